"""Independent reference for the squeeze_inputs view, the scores (SPEC 3.5) and the built-in factors.

Reads the raw panel (lending, market, events, gaps and all) with pyarrow, builds the view's
columns with pandas/numpy (weekday arithmetic by numpy.busday_offset), computes squeeze_score,
crowded_score and squeeze_risk_score from the SPEC text, and the built-in factors
(lendfusion_core::factors), and compares them with what every path (`--path name=folder`, see
crosscheck_common) wrote for the queries `squeeze` and `factors`.

Exactness. The scores rank their inputs, where one ulp decides an order, so the reference ranks
its own exact values, never lendfusion's: the cohort model runs in 60-digit decimal arithmetic
(values equal in exact arithmetic are equal to ~1e-55; they are compared to 1e-40, and no two
distinct values in a panel are that close), the days to cover, short interest and fee changes are
Fractions of the stored doubles, and means of rank fractions are Fractions. So a tie in exact
arithmetic is a tie here, and lendfusion must give the same integer scores.
"""
import argparse
import math
import sys
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from crosscheck_common import (  # noqa: E402
    compare, load_all, parse_paths, rank_of_mean, same_keys, twice_ranks,
)
from crosscheck_functions import past_return, ratio, ts_zscore  # noqa: E402

getcontext().prec = 60
TIE = Decimal("1e-40")


def tie_key(d):
    """Decimals that are equal in exact arithmetic share a key."""
    return d.quantize(TIE)


def table(root, name):
    return ds.dataset(f"{root}/{name}", format="parquet", partitioning="hive").to_table().to_pandas()


def finite(x):
    return x is not None and not (isinstance(x, float) and not math.isfinite(x))


def exact_cohorts(q, p, band=0.05):
    """The SPEC cohort model in 60-digit decimals: otm, near_breakeven(band) and pnl per row
    (None where NULL). Cohorts with the same entry price are added up (SPEC allows merging)."""
    n = len(q)
    otm, near, pnl = [None] * n, [None] * n, [None] * n
    band = Decimal(band)  # the double 0.05, exactly
    book = {}
    prev = None
    for t in range(n):
        qt, pt = q[t], p[t]
        if not (math.isfinite(qt) and math.isfinite(pt)) or qt < 0 or pt <= 0:
            continue
        Q, P = Decimal(qt), Decimal(pt)
        if prev is None:
            book[P] = book.get(P, Decimal(0)) + Q
        elif qt > prev:
            book[P] = book.get(P, Decimal(0)) + (Q - Decimal(prev))
        elif qt < prev:
            f = Q / Decimal(prev)
            book = {k: v * f for k, v in book.items()}
        prev = qt
        total = sum(book.values(), Decimal(0))
        if total <= 0:
            continue
        otm[t] = sum((v for k, v in book.items() if k < P), Decimal(0)) / total
        near[t] = sum((v for k, v in book.items() if abs(k - P) <= band * k), Decimal(0)) / total
        pnl[t] = sum((v * (k - P) / k for k, v in book.items()), Decimal(0)) / total
    return otm, near, pnl


def frac(x):
    """A stored double as an exact Fraction, None where invalid."""
    return Fraction(x) if math.isfinite(x) else None


def ratio_exact(a, b):
    """SPEC's ratio rule on exact values."""
    if a is None or b is None or b <= 0 or a < 0:
        return None
    return a / b


def view(root):
    """The joined panel with the view's columns and the scores' inputs, exactly."""
    lending = table(root, "lending")
    market = table(root, "market")
    events = table(root, "events")
    j = lending.merge(market, on=["date", "security_id"]).sort_values(["security_id", "date"]).reset_index(drop=True)
    rows = len(j)
    cols = {c: [None] * rows for c in ["otm", "otm_max20", "near_breakeven", "pnl", "dtc", "sif", "fee_change",
                                       "pnl5", "pnl20", "pnl60"]}
    abnormal = np.zeros(rows, dtype=bool)
    for _, idx in j.groupby("security_id", sort=False).indices.items():
        q = j.on_loan_qty.to_numpy(float)[idx]
        close = j.close.to_numpy(float)[idx]
        volume = j.volume.to_numpy(float)[idx]
        ret = j.total_return.to_numpy(float)[idx]
        fee = j.fee_bps.to_numpy(float)[idx]
        floats = j.float_shares.to_numpy(float)[idx]
        otm, near, pnl = exact_cohorts(q, close)
        vol = [frac(v) for v in volume]
        for k, row in enumerate(idx):
            cols["otm"][row], cols["near_breakeven"][row], cols["pnl"][row] = otm[k], near[k], pnl[k]
            window = [v for v in otm[max(0, k - 19):k + 1] if v is not None]
            cols["otm_max20"][row] = max(window) if window else None
            # days to cover: the quantity over the mean of the valid volumes of the last 30 rows
            last30 = [v for v in vol[max(0, k - 29):k + 1] if v is not None]
            avg30 = sum(last30, Fraction(0)) / len(last30) if last30 else None
            cols["dtc"][row] = ratio_exact(frac(q[k]), avg30)
            cols["sif"][row] = ratio_exact(frac(q[k]), frac(floats[k]))
            if k >= 5 and math.isfinite(fee[k]) and math.isfinite(fee[k - 5]):
                cols["fee_change"][row] = Fraction(fee[k]) - Fraction(fee[k - 5])
            for lag in (5, 20, 60):
                if k >= lag and pnl[k] is not None and pnl[k - lag] is not None:
                    cols[f"pnl{lag}"][row] = pnl[k] - pnl[k - lag]
            # abnormal volume: a valid volume above twice the mean of the valid volumes of the
            # 20 rows before, on a day with a valid positive return
            before = [v for v in vol[max(0, k - 20):k] if v is not None]
            abnormal[row] = (vol[k] is not None and bool(before) and math.isfinite(ret[k]) and ret[k] > 0
                             and vol[k] > 2 * sum(before, Fraction(0)) / len(before))
    for c, v in cols.items():
        j[c] = v
    j["abnormal_volume"] = abnormal
    sentiment = events.sentiment.to_numpy(float)
    relevance = events.relevance.to_numpy(float)
    is_news = ((events.event_type == "news").to_numpy(bool)
               & np.isfinite(sentiment) & (np.nan_to_num(sentiment) > 0.5)
               & np.isfinite(relevance) & (np.nan_to_num(relevance) >= 90))
    news = events[is_news]
    news_keys = set(zip(news.date, news.security_id))
    j["news"] = [(d, s) in news_keys for d, s in zip(j.date, j.security_id)]
    earn = events[(events.event_type == "earnings").to_numpy(bool) & (events.category == "scheduled").to_numpy(bool)]
    by_sec = {s: np.sort(np.array(grp.date.values, dtype="datetime64[D]")) for s, grp in earn.groupby("security_id")}
    days = np.array(j.date.values, dtype="datetime64[D]")
    lo = np.busday_offset(days, -3, roll="forward")
    hi = np.busday_offset(days, 5, roll="forward")
    flags = np.zeros(len(j), dtype=bool)
    for i, s in enumerate(j.security_id):
        e = by_sec.get(s)
        if e is not None:
            k = np.searchsorted(e, lo[i])
            flags[i] = k < len(e) and e[k] <= hi[i]
    j["earnings"] = flags
    return j


def by_date(j, fn):
    out = np.full(len(j), np.nan)
    for _, idx in j.groupby("date", sort=False).indices.items():
        out[idx] = fn(j.iloc[idx])
    return out


def squeeze_score(sub):
    """SPEC 3.5, exactly: integer ranks, the mean as a Fraction."""
    rows = len(sub)
    ranks = []
    for c in ["otm", "otm_max20", "near_breakeven"]:
        twice, n = twice_ranks(list(sub[c]), key=lambda d: -tie_key(d))
        ranks.append([-(-100 * t // (2 * n)) if t is not None else None for t in twice])
    out = np.full(rows, np.nan)
    news, earnings, abnormal = (sub[c].to_numpy(bool) for c in ["news", "earnings", "abnormal_volume"])
    for i in range(rows):
        available = [r[i] for r in ranks if r[i] is not None]
        if not available:
            continue
        bonus = min(30, 20 * int(news[i]) + 10 * int(earnings[i]) + 10 * int(abnormal[i]))
        out[i] = float(max(Fraction(1), Fraction(sum(available), len(available)) - bonus))
    return out


def crowded_score(sub):
    columns = [twice_ranks([frac(x) for x in sub.on_loan_value.to_numpy(float)]),
               twice_ranks([frac(x) for x in sub.fee_bps.to_numpy(float)]),
               twice_ranks(list(sub.dtc)),
               twice_ranks(list(sub.sif))]
    return rank_of_mean(columns, len(sub))


def squeeze_risk_score(sub):
    crowded = [None if math.isnan(x) else x for x in sub.crowded_score]
    pain = []
    for p5, p20, p60 in zip(sub.pnl5, sub.pnl20, sub.pnl60):
        ok = p5 is not None and p20 is not None and p60 is not None
        pain.append(-(Decimal("0.5") * p5 + Decimal("0.3") * p20 + Decimal("0.2") * p60) if ok else None)
    columns = [twice_ranks(crowded), twice_ranks(list(sub.fee_change)), twice_ranks(pain, key=tie_key)]
    return rank_of_mean(columns, len(sub))


def as_floats(values):
    return np.array([float(v) if v is not None else np.nan for v in values], dtype=float)


def factors(j):
    """Every built-in factor (lendfusion_core::factors::builtin_factors) on the joined panel."""
    def per_security(x, fn):
        out = np.full(len(j), np.nan)
        for _, idx in j.groupby("security_id", sort=False).indices.items():
            out[idx] = fn(x[idx])
        return out

    si = ratio(j.on_loan_qty, j.shares_outstanding)
    fee = j.fee_bps.to_numpy(float)
    return {
        "utilization": ratio(j.on_loan_qty, j.lendable_qty),
        "active_utilization": ratio(j.on_loan_value, j.active_lendable_value),
        "demand_supply_ratio": ratio(j.borrowed_qty, j.lendable_qty),
        "lending_supply": ratio(j.lendable_qty, j.shares_outstanding),
        "short_interest": si,
        "short_interest_float": ratio(j.on_loan_qty, j.float_shares),
        "days_to_cover": as_floats(j.dtc),
        "fee_bps": np.where(np.isfinite(fee), fee, np.nan),
        "on_loan_stability": ratio(j.stable_on_loan_qty, j.on_loan_qty),
        "rerate_pct": ratio(j.rerated_value, j.on_loan_value),
        "si_surprise": per_security(si, lambda x: ts_zscore(x, 252)),
        "momentum_12_1": per_security(j.total_return.to_numpy(float), lambda r: past_return(r, 252, 21)),
    }


EXACT_FACTORS = {"squeeze_score"}


def same_rows(table, ref):
    """The result has one row per row of lending JOIN market, in the reference's order."""
    return (table.num_rows == len(ref)
            and table.column("security_id").to_pylist() == list(ref.security_id)
            and table.column("date").to_pylist() == list(ref.date))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--panel", required=True)
    p.add_argument("--path", action="append", required=True, help="name=folder with squeeze and factors results")
    a = p.parse_args()
    paths = parse_paths(a.path)
    ref = view(a.panel)
    ref["squeeze_score"] = by_date(ref, squeeze_score)
    ref["crowded_score"] = by_date(ref, crowded_score)
    ref["squeeze_risk_score"] = by_date(ref, squeeze_risk_score)
    failures, checked = [], {}

    def check(path, got, name, values, exact, key=None):
        key = key or name
        # fee_change and the P&L changes are the query's own subtractions: NaN - x is NaN there
        sql = name in ("fee_change", "pnl5", "pnl20", "pnl60")
        checked[key] = checked.get(key, 0) + compare(path, got, name, values, failures, exact, sql)

    squeeze = load_all(paths, "squeeze", ["security_id", "date"])
    first = squeeze[paths[0][0]]
    if not same_rows(first, ref):
        failures.append(f"squeeze: {first.num_rows} rows, not the joined panel's {len(ref)}")
    else:
        for path, got in squeeze.items():
            if not same_keys(first, got, path, ["security_id", "date"], failures):
                continue
            for c in ["otm", "otm_max20", "near_breakeven", "pnl", "pnl5", "pnl20", "pnl60", "dtc", "sif",
                      "fee_change"]:
                check(path, got, c, as_floats(ref[c]), False)
            for c in ["news", "earnings", "abnormal_volume"]:
                check(path, got, c, ref[c].to_numpy(float), True)
            for c in ["squeeze_score", "crowded_score", "squeeze_risk_score"]:
                check(path, got, c, ref[c].to_numpy(float), True)

    want = factors(ref)
    want["squeeze_score"] = ref.squeeze_score.to_numpy(float)
    panels = load_all(paths, "factors", ["security_id", "date"])
    first = panels[paths[0][0]]
    if not same_rows(first, ref):
        failures.append(f"factors: {first.num_rows} rows, not the joined panel's {len(ref)}")
    else:
        names = [n for n in first.schema.names if n not in ("date", "security_id")]
        if sorted(names) != sorted(want):
            failures.append(f"factors: columns {names}, the reference has {sorted(want)}")
        for path, got in panels.items():
            if not same_keys(first, got, path, ["security_id", "date"], failures):
                continue
            for name, values in want.items():
                check(path, got, name, values, name in EXACT_FACTORS, key=f"factor {name}")

    for name, n in sorted(checked.items()):
        print(f"{name:22s} {n:7d} values compared")
    if failures:
        print("MISMATCHES:\n" + "\n".join(failures))
        return 1
    print(f"all {len(checked)} squeeze outputs agree with the reference on {len(paths)} paths: "
          + ", ".join(p for p, _ in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
