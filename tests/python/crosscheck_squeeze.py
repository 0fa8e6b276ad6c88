"""Independent reference for the squeeze_inputs view and the scores (SPEC 3.5).

Reads the raw panel (lending, market, events) with pyarrow, builds the view's columns with
pandas/numpy (weekday arithmetic by numpy.busday_offset), computes squeeze_score,
crowded_score and squeeze_risk_score from the SPEC text, and compares with what lendfusion wrote.
"""
import argparse
import math
import sys

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from crosscheck_functions import cohorts, compare  # noqa: E402


def table(root, name):
    return ds.dataset(f"{root}/{name}", format="parquet", partitioning="hive").to_table().to_pandas()


def view(root):
    lending = table(root, "lending")[["date", "security_id", "on_loan_qty"]]
    market = table(root, "market")[["date", "security_id", "close", "volume", "total_return"]]
    events = table(root, "events")
    j = lending.merge(market, on=["date", "security_id"]).sort_values(["security_id", "date"]).reset_index(drop=True)
    otm = np.full(len(j), np.nan)
    near = np.full(len(j), np.nan)
    for _, idx in j.groupby("security_id", sort=False).indices.items():
        o, _, nb = cohorts(j.on_loan_qty.to_numpy(float)[idx], j.close.to_numpy(float)[idx], [0.05])
        otm[idx], near[idx] = o, nb[0.05]
    j["otm"] = otm
    j["near_breakeven"] = near
    g = j.groupby("security_id", sort=False)
    j["otm_max20"] = g.otm.transform(lambda s: s.rolling(20, min_periods=1).max())
    avg20 = g.volume.transform(lambda s: s.shift(1).rolling(20, min_periods=1).mean())
    j["abnormal_volume"] = ((j.volume > 2 * avg20) & (j.total_return > 0)).fillna(False)
    news = events[(events.event_type == "news") & (events.sentiment > 0.5) & (events.relevance >= 90)]
    news_keys = set(zip(news.date, news.security_id))
    j["news"] = [(d, s) in news_keys for d, s in zip(j.date, j.security_id)]
    earn = events[(events.event_type == "earnings") & (events.category == "scheduled")]
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


def desc_rank_100(x):
    s = pd.Series(x)
    r = (-s).rank(method="average")
    return np.ceil(100 * r / s.notna().sum()).to_numpy(float)


def squeeze_score(df):
    out = np.full(len(df), np.nan)
    for _, idx in df.groupby("date", sort=False).indices.items():
        sub = df.iloc[idx]
        ranks = np.column_stack([desc_rank_100(sub[c].to_numpy(float)) for c in ["otm", "otm_max20", "near_breakeven"]])
        comp = np.nanmean(np.where(np.isfinite(ranks), ranks, np.nan), axis=1)
        bonus = np.minimum(30, 20 * sub.news.to_numpy(float) + 10 * sub.earnings.to_numpy(float) + 10 * sub.abnormal_volume.to_numpy(float))
        out[idx] = np.maximum(1, comp - bonus)
    return out


def sql_round(x):
    return np.where(np.isnan(x), np.nan, np.sign(x) * np.floor(np.abs(x) + 0.5))


def rank_of_mean(cols):
    ranks = pd.DataFrame({i: pd.Series(c).rank(pct=True) for i, c in enumerate(cols)})
    m = ranks.mean(axis=1, skipna=True)
    return sql_round(100 * m.rank(pct=True).to_numpy(float))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--panel", required=True)
    p.add_argument("--results", required=True)
    a = p.parse_args()
    ref = view(a.panel)
    got = pq.read_table(a.results).to_pandas().sort_values(["security_id", "date"]).reset_index(drop=True)
    assert len(got) == len(ref), f"row count {len(got)} vs {len(ref)}"
    assert (got.security_id.values == ref.security_id.values).all()
    failures, checked = [], {}
    for c in ["otm", "otm_max20", "near_breakeven"]:
        checked[c] = compare(c, got[c].astype(float).to_numpy(), ref[c].to_numpy(float), failures)
    for c in ["news", "earnings", "abnormal_volume"]:
        g, r = got[c].astype(bool).to_numpy(), ref[c].astype(bool).to_numpy()
        checked[c] = len(g)
        if (g != r).any():
            i = int(np.nonzero(g != r)[0][0])
            failures.append(f"{c}: {(g != r).sum()} mismatches; first {got.security_id[i]} {got.date[i]}: {g[i]} vs {r[i]}")
    # Scores rank their inputs: rank lendfusion's (already checked) inputs, so that ulp-level
    # differences in the inputs cannot reorder near-ties.
    expected = squeeze_score(got.assign(news=got.news.astype(bool), earnings=got.earnings.astype(bool), abnormal_volume=got.abnormal_volume.astype(bool)))
    checked["squeeze_score"] = compare("squeeze_score", got.squeeze_score.astype(float).to_numpy(), expected, failures)
    crowded = np.full(len(got), np.nan)
    risk = np.full(len(got), np.nan)
    for _, idx in got.groupby("date", sort=False).indices.items():
        sub = got.iloc[idx]
        cols = [sub[c].to_numpy(float) for c in ["short_value", "fee_bps", "dtc", "sif"]]
        crowded[idx] = rank_of_mean([np.where(np.isfinite(c), c, np.nan) for c in cols])
        pain = -(0.5 * sub.pnl5.to_numpy(float) + 0.3 * sub.pnl20.to_numpy(float) + 0.2 * sub.pnl60.to_numpy(float))
        risk[idx] = rank_of_mean([sub.crowded_score.to_numpy(float), sub.fee_change.to_numpy(float), pain])
    checked["crowded_score"] = compare("crowded_score", got.crowded_score.astype(float).to_numpy(), crowded, failures)
    checked["squeeze_risk_score"] = compare("squeeze_risk_score", got.squeeze_risk_score.astype(float).to_numpy(), risk, failures)
    for name, n in sorted(checked.items()):
        print(f"{name:20s} {n:7d} values compared")
    if failures:
        print("MISMATCHES:\n" + "\n".join(failures))
        return 1
    print(f"all {len(checked)} squeeze outputs agree with the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
