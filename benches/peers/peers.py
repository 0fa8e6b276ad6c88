"""The factor-panel job written by a skilled user of each peer, on the same Parquet files.

    python benches/peers/peers.py --data DIR --ours OUT_DIR --peers duckdb,polars,pandas,spark

Each peer computes the panel (date, security_id, rank_util, rank_dtc, rank_si, rank_sis,
rank_fee, composite, resid, fwd21) and the IC series (date, ic) of benches/sql/factor_panel.sql,
writes both as Parquet under OUT_DIR/peers/<peer>/, and is checked against lendfusion's
panel.parquet / ic.parquet in OUT_DIR. One line per peer:
`peer=... wall_s=... peak_rss_mib=... panel_rows=... agree=yes`. Each peer runs in its own
process so that its peak RSS is its own.

Semantics (SPEC): ratios are NULL when the denominator <= 0 or the numerator < 0; cs_rank is
the average-tie rank / n over the date's valid rows; cs_normal_rank is ndtri((r - 0.5) / n);
si_surprise is the z-score of short interest against the 252 rows before t (at least 126
valid values); fwd21 the product of (1 + r) over the next 21 rows (NULL if one is missing);
fm_residual the per-date OLS residual of si on [1, ln(market_cap), book_to_market] (NULL when
n <= 3 or rank-deficient by numpy's matrix_rank tolerance); the IC the per-date Spearman
correlation of composite and fwd21 (NULL below 3 pairs or when a side has no variance).

Gaps (docs/data.md): the panel has NULL, NaN and +-inf cells, zero and negative denominators,
halts and missing rows. SPEC treats NULL, NaN and +-inf alike as invalid: a ratio is NULL, a
rolling mean and a cross-section leave the value out, a condition on it is false. Each peer
therefore turns NaN and +-inf into its own missing value where it reads the columns (DuckDB and
Spark: NULL, as a SQL user writes `CASE WHEN isfinite(x) THEN x END`; Polars: null, since Polars
orders NaN above every number, ranks and averages it; pandas: NaN, its missing value, after
replacing +-inf), once per input column; everything after that is the tool's ordinary
NULL-skipping semantics. No peer reads the data differently from a user of that tool who knows
the feed has holes.
"""

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

PANEL_COLUMNS = ["date", "security_id", "rank_util", "rank_dtc", "rank_si", "rank_sis",
                 "rank_fee", "composite", "resid", "fwd21"]
RANKED = ["util", "dtc", "si", "sis", "fee"]
NORMAL = ["util", "dtc", "si"]
EPS = np.finfo(np.float64).eps


def glob(data, table):
    return os.path.join(data, table, "*", "*.parquet")


# ---------------------------------------------------------------------------------------------
# numpy pieces shared by the single-machine peers (inputs sorted by date).

def residual_by_date(day, y, x1, x2):
    """Per-date OLS residual of y on [1, x1, x2] from grouped X'X and X'y (rows sorted by
    date; NaN = missing)."""
    valid = np.isfinite(y) & np.isfinite(x1) & np.isfinite(x2)
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    group = np.cumsum(np.r_[True, day[1:] != day[:-1]]) - 1
    w = valid.astype(np.float64)
    y0, a, b = (np.where(valid, v, 0.0) for v in (y, x1, x2))
    s = lambda v: np.add.reduceat(v, starts)  # noqa: E731
    beta = ols_from_sums(s(w), s(a), s(b), s(a * a), s(a * b), s(b * b),
                         s(y0), s(a * y0), s(b * y0))
    bb = beta[group]
    out = y - (bb[:, 0] + bb[:, 1] * x1 + bb[:, 2] * x2)
    out[~valid] = np.nan
    return out


def ols_from_sums(n, sx1, sx2, sx1x1, sx1x2, sx2x2, sy, sx1y, sx2y):
    """Per-group OLS coefficients [b0, b1, b2] of y on [1, x1, x2] from the sums that make up
    X'X and X'y; NaN where n <= 3 or X is rank-deficient (the singular values of X are the
    square roots of the eigenvalues of X'X)."""
    n = np.asarray(n, dtype=np.float64)
    xtx = np.empty((len(n), 3, 3))
    xtx[:, 0, 0] = n
    xtx[:, 0, 1] = xtx[:, 1, 0] = sx1
    xtx[:, 0, 2] = xtx[:, 2, 0] = sx2
    xtx[:, 1, 1] = sx1x1
    xtx[:, 1, 2] = xtx[:, 2, 1] = sx1x2
    xtx[:, 2, 2] = sx2x2
    xty = np.stack([np.asarray(v, dtype=np.float64) for v in (sy, sx1y, sx2y)], axis=1)
    ok = n > 3
    safe = np.where(ok[:, None, None], xtx, np.eye(3))
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(safe), 0, None))
    tol = sv.max(axis=1) * np.maximum(n, 3) * EPS
    ok &= (sv > tol[:, None]).sum(axis=1) == 3
    safe = np.where(ok[:, None, None], safe, np.eye(3))
    beta = np.linalg.solve(safe, xty[:, :, None])[:, :, 0]
    beta[~ok] = np.nan
    return beta


def ndtri(p):
    from scipy.special import ndtri as f
    return f(p)


def write_outputs(out, columns, ic_date, ic):
    import pyarrow as pa
    import pyarrow.parquet as pq
    arrays = [pa.array(columns[c], from_pandas=True) if isinstance(columns[c], np.ndarray)
              else columns[c] for c in PANEL_COLUMNS]
    pq.write_table(pa.table(arrays, names=PANEL_COLUMNS), os.path.join(out, "panel.parquet"))
    pq.write_table(pa.table({"date": ic_date, "ic": pa.array(ic, from_pandas=True)}),
                   os.path.join(out, "ic.parquet"))


def spearman_by_date(day, x, y):
    """Per-date Spearman correlation (average ties) of x and y over rows where both are valid."""
    import pandas as pd
    df = pd.DataFrame({"d": day, "x": x, "y": y}).dropna()
    g = df.groupby("d")
    df["rx"] = g["x"].rank(method="average")
    df["ry"] = g["y"].rank(method="average")
    ic = df.groupby("d")[["rx", "ry"]].corr().xs("rx", level=1)["ry"]
    counts = g.size()
    ic[counts < 3] = np.nan
    days = np.unique(day)
    return days, ic.reindex(days).to_numpy()


# ---------------------------------------------------------------------------------------------
# DuckDB SQL (+ numpy for Phi^-1 and the per-date OLS).

def duck_rank(c):
    return (f"CASE WHEN {c} IS NOT NULL THEN (RANK() OVER (PARTITION BY date ORDER BY {c}) "
            f"+ (COUNT(*) OVER (PARTITION BY date, {c}) - 1) / 2.0) "
            f"/ COUNT({c}) OVER (PARTITION BY date) END AS rank_{c}")


# Gaps: DuckDB orders NaN above every number (`NaN > 0` is true, so a NaN denominator would
# pass the ratio's `> 0` test), averages and multiplies it, and `count` counts it; +-inf passes
# `>= 0` / `> 0` too. So p reads every measure through valid() (NULL for NaN and +-inf, SPEC's
# invalid values) and the rest is plain SQL: NULL fails every condition, AVG / COUNT skip it,
# RANK puts it last where the CASE drops it.
DUCK_VALID = "CREATE MACRO valid(x) AS CASE WHEN isfinite(x) THEN x END"

DUCK_SQL = """
WITH p AS (
  SELECT l.date, l.security_id, valid(l.on_loan_qty) AS on_loan_qty,
         valid(l.lendable_qty) AS lendable_qty, valid(l.fee_bps) AS fee_bps,
         valid(m.volume) AS volume, valid(m.shares_outstanding) AS shares_outstanding,
         valid(m.market_cap) AS market_cap, valid(m.book_to_market) AS book_to_market,
         valid(m.total_return) AS total_return
  FROM read_parquet('{lending}') l JOIN read_parquet('{market}') m USING (date, security_id)
), a AS (
  SELECT date, security_id, on_loan_qty,
    CASE WHEN lendable_qty > 0 AND on_loan_qty >= 0 THEN on_loan_qty / lendable_qty END AS util,
    CASE WHEN shares_outstanding > 0 AND on_loan_qty >= 0 THEN on_loan_qty / shares_outstanding END AS si,
    fee_bps AS fee,
    AVG(volume) OVER (PARTITION BY security_id ORDER BY date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW) AS adv,
    product(1 + total_return) OVER w21 AS f21, count(total_return) OVER w21 AS n21,
    CASE WHEN market_cap > 0 THEN ln(market_cap) END AS lncap,
    book_to_market AS btm
  FROM p
  WINDOW w21 AS (PARTITION BY security_id ORDER BY date ROWS BETWEEN 1 FOLLOWING AND 21 FOLLOWING)
), b AS (
  SELECT *,
    CASE WHEN adv > 0 AND on_loan_qty >= 0 THEN on_loan_qty / adv END AS dtc,
    CASE WHEN n21 = 21 THEN f21 - 1 END AS fwd21,
    AVG(si) OVER w AS si_mean, STDDEV_SAMP(si) OVER w AS si_sd, COUNT(si) OVER w AS si_n
  FROM a
  WINDOW w AS (PARTITION BY security_id ORDER BY date ROWS BETWEEN 252 PRECEDING AND 1 PRECEDING)
), c AS (
  SELECT date, security_id, util, dtc, si, fee, lncap, btm, fwd21,
    CASE WHEN si IS NOT NULL AND si_n >= 126 AND si_sd > 0 THEN (si - si_mean) / si_sd END AS sis
  FROM b
)
SELECT date, security_id, fwd21, si, lncap, btm, {ranks} FROM c ORDER BY date, security_id
"""


def run_duckdb(data, out):
    import duckdb
    con = duckdb.connect()
    con.execute(DUCK_VALID)
    sql = DUCK_SQL.format(lending=glob(data, "lending"), market=glob(data, "market"),
                          ranks=", ".join(duck_rank(c) for c in RANKED))
    t = con.execute(sql).to_arrow_table()
    f = lambda c: t.column(c).to_numpy(zero_copy_only=False).astype(np.float64)  # noqa: E731
    day = t.column("date").cast("int32").to_numpy(zero_copy_only=False)
    cols = {"date": t.column("date"), "security_id": t.column("security_id")}
    for c in RANKED:
        cols[f"rank_{c}"] = f(f"rank_{c}")
    cols["composite"] = sum(normal_from_rank(day, cols[f"rank_{c}"]) for c in NORMAL) / 3
    cols["resid"] = residual_by_date(day, f("si"), f("lncap"), f("btm"))
    cols["fwd21"] = f("fwd21")
    days, ic = spearman_by_date(day, cols["composite"], cols["fwd21"])
    write_outputs(out, cols, days_to_date(days), ic)


def normal_from_rank(day, rank):
    """Phi^-1((r - 0.5) / n) from cs_rank = r / n: n is the date's count of valid rows."""
    valid = np.isfinite(rank)
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    group = np.cumsum(np.r_[True, day[1:] != day[:-1]]) - 1
    n = np.add.reduceat(valid.astype(np.float64), starts)[group]
    return ndtri(rank - 0.5 / n)


def days_to_date(days):
    import pyarrow as pa
    return pa.array(days.astype(np.int32), type=pa.int32()).cast(pa.date32())


# ---------------------------------------------------------------------------------------------
# Polars lazy (+ numpy for Phi^-1 and the per-date OLS).

def run_polars(data, out):
    import polars as pl

    # Gaps: Polars keeps NaN apart from null — `NaN > 0` is true, rank() ranks NaN above every
    # number and count() counts it, rolling_mean() averages it — and +-inf passes `> 0`. So
    # every measure is read through valid() (null unless finite, SPEC's invalid values); after
    # that null fails every condition and rank / count / rolling_* skip it.
    def valid(*names):
        return [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in names]

    lend = pl.scan_parquet(glob(data, "lending")).select(
        "date", "security_id", *valid("on_loan_qty", "lendable_qty", "fee_bps"))
    mkt = pl.scan_parquet(glob(data, "market")).select(
        "date", "security_id", *valid("volume", "shares_outstanding", "market_cap",
                                      "book_to_market", "total_return"))
    q, lent = pl.col("on_loan_qty"), pl.col("on_loan_qty") >= 0

    def ratio(a, b):
        return pl.when((b > 0) & lent).then(a / b)

    by_sec = "security_id"
    growth = pl.col("total_return") + 1
    f21 = growth.shift(-1)
    for k in range(2, 22):
        f21 = f21 * growth.shift(-k)
    si = pl.col("si")
    prev = si.shift(1)
    panel = (
        lend.join(mkt, on=["date", "security_id"])
        .sort(["security_id", "date"])
        .with_columns(
            util=ratio(q, pl.col("lendable_qty")),
            si=ratio(q, pl.col("shares_outstanding")),
            fee=pl.col("fee_bps"),
            adv=pl.col("volume").rolling_mean(30, min_samples=1).over(by_sec),
            fwd21=(f21 - 1).over(by_sec),
            lncap=pl.when(pl.col("market_cap") > 0).then(pl.col("market_cap").log()),
            btm=pl.col("book_to_market"),
        )
        .with_columns(
            dtc=ratio(q, pl.col("adv")),
            si_mean=prev.rolling_mean(252, min_samples=126).over(by_sec),
            si_sd=prev.rolling_std(252, min_samples=126).over(by_sec),
        )
        .with_columns(
            sis=pl.when(si.is_not_null() & (pl.col("si_sd") > 0))
            .then((si - pl.col("si_mean")) / pl.col("si_sd"))
        )
        # r / n as two columns: Polars divides a column by a scalar (one group's count) as a
        # product with its reciprocal, one ulp off the quotient for some r / n (7 / 20 ->
        # 0.35000000000000003), and cs_rank is the quotient.
        .with_columns(
            [(pl.col(c).rank("average").over("date") / pl.col(c).count().over("date"))
             .alias(f"rank_{c}") for c in RANKED]
        )
        .select("date", "security_id", "si", "lncap", "btm", "fwd21",
                *[f"rank_{c}" for c in RANKED])
        .sort(["date", "security_id"])
        .collect()
    )
    f = lambda c: panel[c].to_numpy().astype(np.float64)  # noqa: E731
    day = panel["date"].cast(pl.Int32).to_numpy()
    cols = {"date": panel["date"].to_arrow(), "security_id": panel["security_id"].to_arrow()}
    for c in RANKED:
        cols[f"rank_{c}"] = f(f"rank_{c}")
    cols["composite"] = sum(normal_from_rank(day, cols[f"rank_{c}"]) for c in NORMAL) / 3
    cols["resid"] = residual_by_date(day, f("si"), f("lncap"), f("btm"))
    cols["fwd21"] = f("fwd21")
    ic = (
        pl.DataFrame({"date": panel["date"], "x": cols["composite"], "y": cols["fwd21"]},
                     nan_to_null=True)
        .lazy()
        .drop_nulls()
        .with_columns(rx=pl.col("x").rank("average").over("date"),
                      ry=pl.col("y").rank("average").over("date"))
        .group_by("date")
        .agg(ic=pl.when(pl.len() >= 3).then(pl.corr("rx", "ry")))
        .collect()
    )
    dates = pl.DataFrame({"date": panel["date"].unique().sort()})
    ic = dates.join(ic, on="date", how="left")
    write_outputs(out, cols, ic["date"].to_arrow(), ic["ic"].to_numpy())


# ---------------------------------------------------------------------------------------------
# pandas / numpy.

def run_pandas(data, out):
    import pandas as pd
    lend = pd.read_parquet(os.path.join(data, "lending"),
                           columns=["date", "security_id", "on_loan_qty", "lendable_qty", "fee_bps"])
    mkt = pd.read_parquet(os.path.join(data, "market"),
                          columns=["date", "security_id", "volume", "shares_outstanding",
                                   "market_cap", "book_to_market", "total_return"])
    for df in (lend, mkt):
        df["date"] = pd.to_datetime(df["date"])
        df["security_id"] = df["security_id"].astype(str)
        # Gaps: NaN is pandas' missing value (rank, rolling and comparisons already skip or
        # fail it) but +-inf is a number to it — ranked, averaged, `> 0` — so it becomes NaN
        # too (SPEC: NULL, NaN and +-inf are all invalid). read_parquet gives NULLs as NaN.
        measures = df.columns.drop(["date", "security_id"])
        df[measures] = df[measures].replace([np.inf, -np.inf], np.nan)
    df = lend.merge(mkt, on=["date", "security_id"]).sort_values(["security_id", "date"],
                                                                  ignore_index=True)
    q = df["on_loan_qty"].to_numpy()

    def ratio(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((b > 0) & (a >= 0), a / b, np.nan)

    g = df.groupby("security_id", sort=False)
    df["util"] = ratio(q, df["lendable_qty"].to_numpy())
    df["si"] = ratio(q, df["shares_outstanding"].to_numpy())
    df["fee"] = df["fee_bps"]
    adv = g["volume"].rolling(30, min_periods=1).mean().reset_index(level=0, drop=True)
    df["dtc"] = ratio(q, adv.to_numpy())
    # Exact product over the next 21 rows: shift-multiply within each security.
    f21 = pd.Series(1.0, index=df.index)
    for k in range(1, 22):
        f21 = f21 * g["total_return"].shift(-k).add(1)
    df["fwd21"] = f21 - 1
    prev = g["si"].shift(1)
    roll = prev.groupby(df["security_id"], sort=False).rolling(252, min_periods=126)
    mean = roll.mean().reset_index(level=0, drop=True)
    sd = roll.std().reset_index(level=0, drop=True)
    df["sis"] = ((df["si"] - mean) / sd).where(sd > 0)
    df["lncap"] = np.log(df["market_cap"].where(df["market_cap"] > 0))
    df["btm"] = df["book_to_market"]
    df = df.sort_values(["date", "security_id"], ignore_index=True)
    gd = df.groupby("date", sort=False)
    cols = {"date": df["date"].to_numpy(), "security_id": df["security_id"].to_numpy()}
    for c in RANKED:
        cols[f"rank_{c}"] = gd[c].rank(method="average", pct=True).to_numpy()
    day = df["date"].to_numpy().astype("datetime64[D]").astype(np.int32)
    cols["composite"] = sum(normal_from_rank(day, cols[f"rank_{c}"]) for c in NORMAL) / 3
    cols["resid"] = residual_by_date(day, df["si"].to_numpy(), df["lncap"].to_numpy(),
                                     df["btm"].to_numpy())
    cols["fwd21"] = df["fwd21"].to_numpy()
    import pyarrow as pa
    cols["date"] = pa.array(cols["date"]).cast(pa.date32())
    cols["security_id"] = pa.array(cols["security_id"], type=pa.string())
    days, ic = spearman_by_date(day, cols["composite"], cols["fwd21"])
    write_outputs(out, cols, days_to_date(days), ic)


# ---------------------------------------------------------------------------------------------
# PySpark local[*]: DataFrame windows; Phi^-1 by a pandas UDF; the per-date OLS from grouped
# moments solved on the driver and joined back.

def run_spark(data, out):
    import pandas as pd
    from pyspark.sql import SparkSession, Window, functions as F
    from pyspark.sql.functions import pandas_udf

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (SparkSession.builder.master("local[*]").appName("factor-panel")
             .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "8g"))
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

    # Gaps: Spark SQL orders NaN above every number (`NaN > 0` is true; NaN = NaN), averages
    # it and counts it, and +-inf passes `> 0`; so every measure is read through valid() (NULL
    # unless finite: SPEC's invalid values), after which NULL fails every condition and
    # avg / count / rank skip it.
    def valid(*names):
        return [F.when(~F.isnan(c) & (F.abs(c) != float("inf")), F.col(c)).alias(c)
                for c in names]

    lend = spark.read.parquet(os.path.join(data, "lending")).select(
        "date", "security_id", *valid("on_loan_qty", "lendable_qty", "fee_bps"))
    mkt = spark.read.parquet(os.path.join(data, "market")).select(
        "date", "security_id", *valid("volume", "shares_outstanding", "market_cap",
                                      "book_to_market", "total_return"))
    q = F.col("on_loan_qty")

    def ratio(a, b):
        return F.when((b > 0) & (a >= 0), a / b)

    sec = Window.partitionBy("security_id").orderBy("date")
    w21 = sec.rowsBetween(1, 21)
    w252 = sec.rowsBetween(-252, -1)
    df = (lend.join(mkt, ["date", "security_id"])
          .withColumn("util", ratio(q, F.col("lendable_qty")))
          .withColumn("si", ratio(q, F.col("shares_outstanding")))
          .withColumn("fee", F.col("fee_bps"))
          .withColumn("adv", F.avg("volume").over(sec.rowsBetween(-29, 0)))
          .withColumn("dtc", ratio(q, F.col("adv")))
          .withColumn("f21", F.product(F.col("total_return") + 1).over(w21))
          .withColumn("n21", F.count("total_return").over(w21))
          .withColumn("fwd21", F.when(F.col("n21") == 21, F.col("f21") - 1))
          .withColumn("si_mean", F.avg("si").over(w252))
          .withColumn("si_sd", F.stddev_samp("si").over(w252))
          .withColumn("si_n", F.count("si").over(w252))
          .withColumn("sis", F.when(F.col("si").isNotNull() & (F.col("si_n") >= 126)
                                    & (F.col("si_sd") > 0),
                                    (F.col("si") - F.col("si_mean")) / F.col("si_sd")))
          .withColumn("lncap", F.when(F.col("market_cap") > 0, F.log("market_cap")))
          .withColumn("btm", F.col("book_to_market")))

    @pandas_udf("double")
    def phi_inv(p: pd.Series) -> pd.Series:
        return pd.Series(ndtri(p.to_numpy()))

    for c in RANKED:
        by_date = Window.partitionBy("date")
        rank = (F.rank().over(Window.partitionBy("date").orderBy(F.col(c).asc_nulls_last()))
                + (F.count(F.lit(1)).over(Window.partitionBy("date", c)) - 1) / 2.0)
        n = F.count(c).over(by_date)
        df = df.withColumn(f"r_{c}", F.when(F.col(c).isNotNull(), rank)).withColumn(f"n_{c}", n)
        df = df.withColumn(f"rank_{c}", F.col(f"r_{c}") / F.col(f"n_{c}"))
    df = df.withColumn(
        "composite",
        sum(phi_inv((F.col(f"r_{c}") - 0.5) / F.col(f"n_{c}")) for c in NORMAL) / 3)
    df = df.cache()
    valid = df.where(F.col("si").isNotNull() & F.col("lncap").isNotNull() & F.col("btm").isNotNull())
    x1, x2, y = F.col("lncap"), F.col("btm"), F.col("si")
    mom = (valid.groupBy("date").agg(
        F.count(F.lit(1)).alias("n"), F.sum(x1).alias("sx1"), F.sum(x2).alias("sx2"),
        F.sum(x1 * x1).alias("sx1x1"), F.sum(x1 * x2).alias("sx1x2"), F.sum(x2 * x2).alias("sx2x2"),
        F.sum(y).alias("sy"), F.sum(x1 * y).alias("sx1y"), F.sum(x2 * y).alias("sx2y"))
        .toPandas())
    beta = ols_from_sums(*(mom[c].to_numpy(dtype=np.float64) for c in
                           ["n", "sx1", "sx2", "sx1x1", "sx1x2", "sx2x2", "sy", "sx1y", "sx2y"]))
    coef = spark.createDataFrame(pd.DataFrame({"date": mom["date"], "b0": beta[:, 0],
                                               "b1": beta[:, 1], "b2": beta[:, 2]}))
    panel = (df.join(F.broadcast(coef), "date", "left")
             .withColumn("resid", F.when(F.col("si").isNotNull() & F.col("lncap").isNotNull()
                                         & F.col("btm").isNotNull(),
                                         y - (F.col("b0") + F.col("b1") * x1 + F.col("b2") * x2)))
             .select(*PANEL_COLUMNS)
             .orderBy("date", "security_id"))
    panel.coalesce(1).write.mode("overwrite").parquet(os.path.join(out, "panel.spark"))
    both = panel.where(F.col("composite").isNotNull() & F.col("fwd21").isNotNull())
    rx = (F.rank().over(Window.partitionBy("date").orderBy("composite"))
          + (F.count(F.lit(1)).over(Window.partitionBy("date", "composite")) - 1) / 2.0)
    ry = (F.rank().over(Window.partitionBy("date").orderBy("fwd21"))
          + (F.count(F.lit(1)).over(Window.partitionBy("date", "fwd21")) - 1) / 2.0)
    ic = (both.withColumn("rx", rx).withColumn("ry", ry).groupBy("date")
          .agg(F.when(F.count(F.lit(1)) >= 3, F.corr("rx", "ry")).alias("ic")))
    ic = df.select("date").distinct().join(ic, "date", "left").orderBy("date")
    ic.coalesce(1).write.mode("overwrite").parquet(os.path.join(out, "ic.spark"))
    spark.stop()
    import pyarrow.parquet as pq
    pq.write_table(pq.read_table(os.path.join(out, "panel.spark")).select(PANEL_COLUMNS),
                   os.path.join(out, "panel.parquet"))
    pq.write_table(pq.read_table(os.path.join(out, "ic.spark")), os.path.join(out, "ic.parquet"))


# ---------------------------------------------------------------------------------------------
# Agreement with lendfusion, and the harness.

# Exact: a cross-sectional rank is r / n with r an integer or half-integer and n an integer,
# one correctly rounded division in every tool, so any difference is a different rank or a
# different n (a row left in or out of the cross-section). Integer, Boolean and string columns
# (buckets, flags, labels) are exact too, whatever their name.
EXACT = {"rank_util", "rank_dtc", "rank_si", "rank_sis", "rank_fee"}
# Within a tolerance relative to max(1, |ours|): Phi^-1 comes from another library (the last
# bits differ), the OLS and the forward product from another order of operations. The IC ranks
# the composite: two composites within ~1e-13 of each other can swap places, which moves that
# date's IC by ~1e-7.
TOLERANCE = {"composite": 1e-9, "resid": 1e-9, "fwd21": 1e-9, "ic": 1e-6}


def near_tie_dates(panel):
    """Dates whose valid composites include two within 1e-12 of each other: ties in exact
    arithmetic that rounding orders either way (ndtri and our Phi^-1 differ in the last bit),
    so their Spearman IC legitimately depends on the library."""
    both = panel.dropna(subset=["composite", "fwd21"]).sort_values(["date", "composite"])
    gap = both.groupby("date")["composite"].diff().abs()
    return set(both.loc[gap < 1e-12, "date"])


def key_values(column):
    """A key column as numpy values comparable across writers (dates as days since the epoch,
    identifiers as str, whatever Arrow type each tool wrote them as)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        return pc.cast(pc.cast(column, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False)
    return np.asarray(pc.cast(column, pa.large_string()).to_pylist(), dtype=object)


def values_and_nulls(column):
    """(values, is_null) of a value column; values are float64 for numeric columns (NULL rows
    hold NaN there, but the mask, not NaN, says which rows are NULL) and objects otherwise."""
    import pyarrow as pa
    column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type) \
            or pa.types.is_boolean(column.type):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    else:
        values = np.asarray(column.to_pylist(), dtype=object)
    return values, nulls


def shown(value):
    """A value as a message shows it: every digit of a float, none of numpy's wrapping."""
    return repr(float(value)) if isinstance(value, np.floating) else repr(value)


def compare(ours_dir, peer_dir):
    """Differences between the peer's outputs and ours (empty = agree): the same columns and
    rows; the same keys; NULL exactly where ours is NULL; no NaN or +-inf on either side (SPEC:
    a function never returns them); ranks and integer / Boolean / string columns exactly equal;
    the other numbers within TOLERANCE of ours."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    problems = []
    ours_panel = pq.read_table(os.path.join(ours_dir, "panel.parquet"),
                               columns=["date", "composite", "fwd21"]).to_pandas()
    skip = {np.datetime64(d, "D").astype(np.int64) for d in near_tie_dates(ours_panel)}
    for name, key in (("panel.parquet", ["date", "security_id"]), ("ic.parquet", ["date"])):
        ours = pq.read_table(os.path.join(ours_dir, name))
        theirs = pq.read_table(os.path.join(peer_dir, name))
        if sorted(ours.column_names) != sorted(theirs.column_names):
            problems.append(f"{name}: columns {theirs.column_names} vs ours {ours.column_names}")
            continue
        if ours.num_rows != theirs.num_rows:
            problems.append(f"{name}: {theirs.num_rows} rows vs ours {ours.num_rows}")
            continue
        order = [(k, "ascending") for k in key]
        ours = ours.sort_by(order)
        theirs = theirs.select(ours.column_names).sort_by(order)
        keys = {k: key_values(ours[k]) for k in key}
        differs = [k for k in key if not np.array_equal(keys[k], key_values(theirs[k]))]
        if differs:
            problems.append(f"{name}: key columns {differs} differ")
            continue

        def where(i):
            return ", ".join(f"{k}={np.datetime64(int(keys[k][i]), 'D')}" if k == "date"
                             else f"{k}={keys[k][i]}" for k in key)

        # (A Boolean mask either way: `~False` is -1, and a mask of 0s and -1s would index.)
        tied = (np.isin(keys["date"], list(skip)) if name == "ic.parquet"
                else np.zeros(ours.num_rows, dtype=bool))
        for col in [c for c in ours.column_names if c not in key]:
            a, null_a = values_and_nulls(ours[col])
            b, null_b = values_and_nulls(theirs[col])
            numeric = a.dtype == np.float64 and b.dtype == np.float64
            if numeric:
                bad = [(side, v, n) for side, v, n in (("ours", a, null_a), ("peer", b, null_b))
                       if (~n & ~np.isfinite(v)).any()]
                for side, v, n in bad:
                    i = np.flatnonzero(~n & ~np.isfinite(v))[0]
                    problems.append(f"{name}.{col}: {side} has {(~n & ~np.isfinite(v)).sum()} "
                                    f"NaN / inf values (SPEC: NULL), first at {where(i)}: {v[i]}")
                if bad:
                    continue
            if (null_a != null_b).any():
                i = np.flatnonzero(null_a != null_b)[0]
                problems.append(f"{name}.{col}: {(null_a != null_b).sum()} NULL mismatches, "
                                f"first at {where(i)}: ours {None if null_a[i] else a[i]} "
                                f"peer {None if null_b[i] else b[i]}")
                continue
            exact = (col in EXACT or not numeric
                     or not pa.types.is_floating(ours.schema.field(col).type))
            ok = ~null_a & ~tied
            if exact:
                diff = np.flatnonzero(ok & (a != b))
                if diff.size:
                    i = diff[0]
                    problems.append(f"{name}.{col}: {diff.size} values not exactly equal, "
                                    f"first at {where(i)}: ours {shown(a[i])} peer {shown(b[i])}")
                continue
            err = np.abs(a[ok] - b[ok]) / np.maximum(1.0, np.abs(a[ok]))
            if err.size and err.max() > TOLERANCE[col]:
                i = np.flatnonzero(ok)[np.argmax(err)]
                problems.append(f"{name}.{col}: max relative difference {err.max():.3g} "
                                f"at {where(i)}: ours {shown(a[i])} peer {shown(b[i])}")
    return problems


PEERS = {"duckdb": run_duckdb, "polars": run_polars, "pandas": run_pandas, "spark": run_spark}


def child(peer, data, out):
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    PEERS[peer](data, out)
    wall = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"wall_s={wall:.3f} peak_rss_mib={max(rss, rss_children):.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data")
    ap.add_argument("--ours", help="lendfusion bench factor-panel --out DIR")
    ap.add_argument("--peers", default="duckdb,polars,pandas,spark")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--compare", nargs=2, metavar=("OURS", "OTHER"),
                    help="only compare two output folders")
    args = ap.parse_args()
    if args.compare:
        problems = compare(*args.compare)
        print(f"agree={'yes' if not problems else 'no'}")
        for p in problems:
            print(f"  {p}")
        return 1 if problems else 0
    if args.child:
        child(args.child, args.data, args.ours)
        return 0
    failed = False
    for peer in args.peers.split(","):
        out = os.path.join(args.ours, "peers", peer)
        # Start each timed run with no earlier run's output still being written back.
        os.sync()
        run = subprocess.run([sys.executable, __file__, "--data", args.data, "--ours", out,
                              "--child", peer], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"peer={peer} error\n{run.stdout}\n{run.stderr}")
            failed = True
            continue
        timing = run.stdout.strip().splitlines()[-1]
        problems = compare(args.ours, out)
        print(f"peer={peer} {timing} agree={'yes' if not problems else 'no'}")
        for p in problems:
            print(f"  {p}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
