"""Independent computation of a factor report with pandas/scipy on the same Parquet files.

Usage: crosscheck_report.py DATA_ROOT REPORT_DIR HORIZON QUANTILES
The report in REPORT_DIR must be `--factor utilization --rebalance monthly` (bearish, HTB
threshold 120 bps, no universe, no date bounds). Compares IC and quantile returns (forward
returns over HORIZON rows), the long/short return (held from one rebalance date to the next),
Sharpe, max drawdown and turnover, full universe and ex-HTB, to 1e-9.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

root, out = Path(sys.argv[1]), Path(sys.argv[2])
H, Q = int(sys.argv[3]), int(sys.argv[4])
P = 12


def table(name):
    frame = pd.read_parquet(root / name)
    return frame.drop(columns=[c for c in ("month", "day") if c in frame.columns])


lending = table("lending")
market = table("market")
for frame in (lending, market):
    frame["date"] = pd.to_datetime(frame["date"])

# Forward returns over each security's full market history: prod(1 + r[t+1..t+H]) - 1.
market = market.sort_values(["security_id", "date"])
log_growth = np.log1p(market["total_return"].astype(float))
future = log_growth.groupby(market["security_id"]).transform(
    lambda s: s[::-1].rolling(H, min_periods=H).sum()[::-1].shift(-1)
)
market["fwd_ret"] = np.expm1(future)

# Monthly rebalance: the last date in the data of each month.
dates = pd.Series(sorted(market["date"].unique()))
rebalance = dates.groupby(dates.dt.to_period("M")).max().values

# Holding-period returns: from each rebalance date to the next one (the last has none).
rebalance = np.sort(rebalance)
held = market[(market["date"] > rebalance[0]) & (market["date"] <= rebalance[-1])].copy()
held["start"] = rebalance[np.searchsorted(rebalance, held["date"].values, side="left") - 1]
r = held["total_return"].astype(float)
held["ok"] = np.isfinite(r) & (r > -1)
held["growth"] = 1 + r
hold = held.groupby(["security_id", "start"]).agg(growth=("growth", "prod"), ok=("ok", "all")).reset_index()
hold["hold_ret"] = np.where(hold["ok"], hold["growth"] - 1, np.nan)
hold = hold.rename(columns={"start": "date"})[["date", "security_id", "hold_ret"]]

panel = lending.merge(market[["date", "security_id", "fwd_ret"]], on=["date", "security_id"])
panel = panel.merge(hold, on=["date", "security_id"], how="left")
panel = panel[panel["date"].isin(rebalance)].copy()
num, den = panel["on_loan_qty"], panel["lendable_qty"]
valid = np.isfinite(num) & np.isfinite(den) & (den > 0) & (num >= 0)
panel["factor"] = np.where(valid, num / den.where(den > 0), np.nan)


def bucketize(frame):
    frame = frame.copy()
    ok = frame["factor"].notna()
    ranks = frame.loc[ok].groupby("date")["factor"].rank(method="average")
    counts = frame.loc[ok].groupby("date")["factor"].transform("count")
    frame["bucket"] = np.nan
    frame.loc[ok, "bucket"] = np.ceil(Q * ranks / counts)
    return frame


def evaluate(frame):
    frame = bucketize(frame)
    rows = []
    prev_legs = None
    for date, day in frame.groupby("date", sort=True):
        both = day.dropna(subset=["factor", "fwd_ret"])
        ic = spearmanr(both["factor"], both["fwd_ret"]).statistic if len(both) >= 3 else np.nan
        if len(both) >= 3 and (both["factor"].nunique() < 2 or both["fwd_ret"].nunique() < 2):
            ic = np.nan
        long = day[day["bucket"] == 1]
        short = day[day["bucket"] == Q]
        ls = long["hold_ret"].mean() - short["hold_ret"].mean()
        legs = {"long": set(long["security_id"]), "short": set(short["security_id"])}
        turnover = np.nan
        if prev_legs is not None:
            parts = [1 - len(legs[k] & prev_legs[k]) / len(legs[k]) for k in legs if legs[k]]
            turnover = np.mean(parts) if parts else np.nan
        prev_legs = legs
        rows.append({"date": date, "ic": ic, "long_short": ls, "turnover": turnover})
    series = pd.DataFrame(rows)
    qmeans = (
        frame.dropna(subset=["bucket"])
        .groupby(["date", "bucket"])["fwd_ret"].mean()
        .groupby("bucket").mean()
    )
    ls = series["long_short"].dropna()
    growth = np.cumprod(1 + ls.values)
    peak = np.maximum.accumulate(np.concatenate([[1.0], growth]))[1:]
    summary = {
        "ic_mean": series["ic"].mean(),
        "ic_std": series["ic"].std(ddof=1),
        "ic_share_positive": (series["ic"].dropna() > 0).mean(),
        "ann_return": growth[-1] ** (P / len(ls)) - 1,
        "ann_vol": ls.std(ddof=1) * math.sqrt(P),
        "sharpe": ls.mean() / ls.std(ddof=1) * math.sqrt(P),
        "hit_rate": (ls > 0).mean(),
        "turnover": series["turnover"].mean(),
        "max_drawdown": min(0.0, (growth / peak - 1).min()),
    }
    summary["ic_t_stat"] = summary["ic_mean"] / (summary["ic_std"] / math.sqrt(series["ic"].count()))
    return series, qmeans, summary


ours_summary = pd.read_csv(out / "summary.csv").set_index("sample")
ours_series = pd.read_csv(out / "series.csv", parse_dates=["date"])
ours_q = pd.read_csv(out / "quantile_means.csv")
worst = 0.0
# ex-HTB drops the names whose fee is known to be above 120 bps: SPEC's is_htb is NULL (not
# TRUE) for a NULL, NaN or infinite fee, so those names stay.
fee = panel["fee_bps"].astype(float)
htb = np.isfinite(fee) & (fee > 120)
for sample, frame in [("full", panel), ("ex_htb", panel[~htb])]:
    series, qmeans, summary = evaluate(frame)
    mine = ours_series[ours_series["sample"] == sample].reset_index(drop=True)
    assert len(mine) == len(series), (sample, len(mine), len(series))
    assert (mine["date"].values == series["date"].values).all(), sample
    for column in ["ic", "long_short", "turnover"]:
        a, b = mine[column].values.astype(float), series[column].values.astype(float)
        assert (np.isnan(a) == np.isnan(b)).all(), (sample, column, np.isnan(a).sum(), np.isnan(b).sum())
        diff = np.nanmax(np.abs(a - b)) if (~np.isnan(a)).any() else 0.0
        worst = max(worst, diff)
        assert diff < 1e-9, (sample, column, diff)
    for key, value in summary.items():
        got = ours_summary.loc[sample, key]
        assert abs(got - value) < 1e-9 * max(1.0, abs(value)), (sample, key, got, value)
    q = ours_q[ours_q["sample"] == sample].set_index("bucket")["mean_return"]
    for bucket, value in qmeans.items():
        assert abs(q.loc[int(bucket)] - value) < 1e-9, (sample, bucket, q.loc[int(bucket)], value)
print(f"report matches pandas/scipy (largest series difference {worst:.2e})")
