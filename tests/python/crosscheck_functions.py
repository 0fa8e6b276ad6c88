"""Independent reference for lendfusion's functions (SPEC 3.1-3.4).

Reads the inputs and outputs lendfusion computed on every path (`--path name=folder`, see
crosscheck_common), recomputes every output from the first path's inputs with numpy/pandas/
scipy/statsmodels written straight from SPEC, and compares each path's outputs with it: NULL
positions exactly; ranks, buckets, scores and Booleans exactly; values to 1e-9 (absolute, or
relative for large values). Each path's inputs must be the first path's. Exit status 1 on any
mismatch.
"""
import argparse
import math
import sys

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import norm, spearmanr

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from crosscheck_common import (  # noqa: E402
    bucket_exact, compare, compare_inputs, load_all, parse_paths, pct_rank_exact, same_keys,
)

DEFAULT_BREAKPOINTS = np.array([25, 50, 100, 200, 400, 800, 1600, 3200, 6400], dtype=float)
CUSTOM_BREAKPOINTS = np.array([10, 20, 40, 80, 160, 320, 640, 1280, 2560], dtype=float)


def valid(x):
    x = np.asarray(x, dtype=float)
    return np.isfinite(x)


def ratio(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ok = valid(a) & valid(b) & (b > 0) & (a >= 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = a / b
    ok &= np.isfinite(r)
    return np.where(ok, r, np.nan)


def rerate_direction(today, prev):
    ok = valid(today) & valid(prev)
    return np.where(ok, np.sign(np.nan_to_num(today) - np.nan_to_num(prev)), np.nan)


def dcbs(fee, bps):
    fee = np.asarray(fee, dtype=float)
    ok = valid(fee) & (fee >= 0)
    score = 1 + (bps[None, :] < np.nan_to_num(fee)[:, None]).sum(axis=1)
    return np.where(ok, score, np.nan)


def is_htb(fee, threshold):
    ok = valid(fee)
    return np.where(ok, (np.nan_to_num(fee) > threshold).astype(float), np.nan)


def regime(x, band):
    out = np.full(len(x), None, dtype=object)
    for i, v in enumerate(x):
        if v is None or not math.isfinite(v):
            continue
        out[i] = "oversold" if v < -band else ("overbought" if v > band else "range")
    return out


def per_security(df, column, fn):
    """Apply fn(array) per security in date order; df is sorted by (security_id, date)."""
    out = np.full(len(df), np.nan)
    for _, idx in df.groupby("security_id", sort=False).indices.items():
        out[idx] = fn(df[column].to_numpy(dtype=float)[idx])
    return out


def compounded(r, start, length):
    """prod(1 + r[start:start+length]) - 1, NaN if out of range or any value invalid."""
    if start < 0 or start + length > len(r):
        return np.nan
    w = r[start:start + length]
    if not np.all(np.isfinite(w)):
        return np.nan
    return float(np.prod(1.0 + w) - 1.0)


def fwd_return(r, h):
    return np.array([compounded(r, t + 1, h) for t in range(len(r))])


def past_return(r, n, skip=0):
    return np.array([compounded(r, t - n + 1, n - skip) for t in range(len(r))])


def ts_zscore(x, n):
    need = max(2, math.ceil(n / 2))
    out = np.full(len(x), np.nan)
    for t in range(len(x)):
        w = x[max(0, t - n):t]
        w = w[np.isfinite(w)]
        if not np.isfinite(x[t]) or len(w) < need:
            continue
        if np.all(w == w[0]):
            continue
        sd = np.std(w, ddof=1)
        if sd > 0:
            out[t] = (x[t] - np.mean(w)) / sd
    return out


def ts_beta(y, x, n):
    need = max(3, math.ceil(n / 2))
    out = np.full(len(y), np.nan)
    for t in range(len(y)):
        lo = max(0, t - n + 1)
        yy, xx = y[lo:t + 1], x[lo:t + 1]
        ok = np.isfinite(yy) & np.isfinite(xx)
        yy, xx = yy[ok], xx[ok]
        if len(xx) < need or np.all(xx == xx[0]):
            continue
        xm, ym = xx.mean(), yy.mean()
        out[t] = np.sum((xx - xm) * (yy - ym)) / np.sum((xx - xm) ** 2)
    return out


def cohorts(q, p, band_values):
    """The SPEC cohort model, unmerged: returns otm, pnl and near-breakeven per band."""
    n = len(q)
    otm = np.full(n, np.nan)
    pnl = np.full(n, np.nan)
    near = {b: np.full(n, np.nan) for b in band_values}
    cq = np.zeros(0)
    cp = np.zeros(0)
    prev = None
    for t in range(n):
        qt, pt = q[t], p[t]
        if not (np.isfinite(qt) and np.isfinite(pt)) or qt < 0 or pt <= 0:
            continue
        if prev is None:
            cq, cp = np.array([qt]), np.array([pt])
        elif qt > prev:
            cq, cp = np.append(cq, qt - prev), np.append(cp, pt)
        elif qt < prev:
            cq = cq * (qt / prev)
        prev = qt
        total = cq.sum()
        if total <= 0:
            continue
        otm[t] = cq[cp < pt].sum() / total
        pnl[t] = np.sum(cq * (cp - pt) / cp) / total
        for b in band_values:
            near[b][t] = cq[np.abs((cp - pt) / cp) <= b].sum() / total
    return otm, pnl, near


def squeeze_event(r, q):
    n = len(r)
    out = np.full(n, np.nan)
    for t in range(n):
        if t < 62 or t + 5 >= n:
            continue
        if not np.all(np.isfinite(r[t - 62:t + 1])) or not np.all(np.isfinite(q[t:t + 6])):
            continue
        move = (1 + r[t - 2]) * (1 + r[t - 1]) * (1 + r[t]) - 1
        sigma = np.std(r[t - 62:t - 2], ddof=1)
        covering = all(q[i + 1] < q[i] for i in range(t, t + 5))
        out[t] = float(move > 3 * sigma * math.sqrt(3) and covering)
    return out


def cross_section(df, column, fn, keys=("date",)):
    """Apply fn(values with NaN for invalid) per cross-section; returns an aligned array."""
    out = np.full(len(df), np.nan)
    x = df[column].to_numpy(dtype=float)
    for _, idx in df.groupby(list(keys), sort=False).indices.items():
        out[idx] = fn(np.where(np.isfinite(x[idx]), x[idx], np.nan))
    return out


def zscore(v):
    s = pd.Series(v)
    n = s.notna().sum()
    sd = s.std(ddof=1)
    if n < 2 or not sd > 0:
        return np.full(len(v), np.nan)
    return ((s - s.mean()) / sd).to_numpy()


def demean(v):
    s = pd.Series(v)
    return (s - s.mean()).to_numpy()


def normal_rank(v):
    s = pd.Series(v)
    r = s.rank(method="average")
    return norm.ppf((r - 0.5) / s.notna().sum()).astype(float)


def winsorize(p):
    def f(v):
        ok = np.isfinite(v)
        if not ok.any():
            return v
        lo, hi = np.quantile(v[ok], p), np.quantile(v[ok], 1 - p)
        return np.where(ok, np.clip(v, lo, hi), np.nan)
    return f


def fm_residual(df, y, xs):
    out = np.full(len(df), np.nan)
    cols = [df[c].to_numpy(dtype=float) for c in [y] + xs]
    for _, idx in df.groupby("date", sort=False).indices.items():
        block = np.column_stack([c[idx] for c in cols])
        ok = np.all(np.isfinite(block), axis=1)
        sub = block[ok]
        n, k = len(sub), len(xs)
        if n <= k + 1:
            continue
        X = np.column_stack([np.ones(n), sub[:, 1:]])
        if np.linalg.matrix_rank(X) < k + 1:
            continue
        b = np.linalg.lstsq(X, sub[:, 0], rcond=None)[0]
        out[idx[ok]] = sub[:, 0] - X @ b
    return out


def spearman_ref(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return np.nan
    return spearmanr(x, y).statistic


def fm_coefficients_ref(y, xs):
    block = np.column_stack([y] + xs)
    ok = np.all(np.isfinite(block), axis=1)
    sub = block[ok]
    n, k = len(sub), len(xs)
    if n <= k + 1:
        return [np.nan] * (k + 1)
    X = np.column_stack([np.ones(n), sub[:, 1:]])
    if np.linalg.matrix_rank(X) < k + 1:
        return [np.nan] * (k + 1)
    # statsmodels OLS, an implementation independent of ours
    return list(sm.OLS(sub[:, 0], X).fit().params)


def nw_ref(x, lags=None):
    x = x[np.isfinite(x)]
    t = len(x)
    if t < 3:
        return np.nan
    if lags is None:
        lags = int(math.floor(4 * (t / 100) ** (2 / 9)))
    lags = min(lags, t - 1)
    fit = sm.OLS(x, np.ones(t)).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
    return float(fit.tvalues[0]) if np.isfinite(fit.bse[0]) and fit.bse[0] > 0 else np.nan


def series_ref(r, periods=252):
    r = r[np.isfinite(r)]
    t = len(r)
    out = {}
    growth = np.prod(1 + r) if t else np.nan
    out["ann_return"] = growth ** (periods / t) - 1 if t and growth >= 0 else np.nan
    sd = r.std(ddof=1) if t >= 2 else np.nan
    out["ann_vol"] = sd * math.sqrt(periods)
    out["sharpe"] = r.mean() / sd * math.sqrt(periods) if t >= 2 and sd > 0 else np.nan
    out["ir"] = out["ann_return"] / out["ann_vol"] if t >= 2 and out["ann_vol"] > 0 else np.nan
    if t:
        w = np.cumprod(1 + r)
        peak = np.maximum.accumulate(np.concatenate([[1.0], w]))[1:]
        out["mdd"] = min(0.0, float((w / peak - 1).min()))
        out["hit"] = float((r > 0).mean())
    else:
        out["mdd"] = out["hit"] = np.nan
    return out




def by_date_ref(df, dates):
    groups = df.groupby("date", sort=True)
    want = {k: [] for k in ["ic_fee", "fm_b0", "fm_b1", "fm_b2"]}
    for date in dates:
        g = groups.get_group(date)
        want["ic_fee"].append(spearman_ref(g.fee_bps.to_numpy(float), g.fwd21.to_numpy(float)))
        b = fm_coefficients_ref(g.ret.to_numpy(float), [g.fee_bps.to_numpy(float), g.si.to_numpy(float)])
        for i in range(3):
            want[f"fm_b{i}"].append(b[i])
    return want


def by_security_ref(df, ids):
    want = {k: [] for k in ["ann_return", "ann_vol", "sharpe", "ir", "mdd", "hit", "nw", "nw_3", "ann_return_12"]}
    groups = df.groupby("security_id", sort=True)
    for sid in ids:
        r = groups.get_group(sid).sort_values("date").ret.to_numpy(float)
        s = series_ref(r)
        for k in ["ann_return", "ann_vol", "sharpe", "ir", "mdd", "hit"]:
            want[k].append(s[k])
        want["nw"].append(nw_ref(r))
        want["nw_3"].append(nw_ref(r, 3))
        want["ann_return_12"].append(series_ref(r, 12)["ann_return"])
    return want


def reference(df):
    """Every output of the functions query, from its inputs: {column: (values, exact)}."""
    want = {}

    def ref(name, values, exact=False):
        want[name] = (np.asarray(values, dtype=float), exact)

    # Lending factors (SPEC 3.1)
    ref("short_interest", ratio(df.on_loan_qty, df.shares_outstanding))
    ref("utilization", ratio(df.on_loan_qty, df.lendable_qty))
    ref("active_utilization", ratio(df.on_loan_value, df.active_lendable_value))
    ref("demand_supply_ratio", ratio(df.borrowed_qty, df.lendable_qty))
    ref("lending_supply", ratio(df.lendable_qty, df.shares_outstanding))
    ref("short_interest_float", ratio(df.on_loan_qty, df.float_shares))
    ref("days_to_cover", ratio(df.on_loan_qty, df.adv30))
    ref("on_loan_stability", ratio(df.stable_on_loan_qty, df.on_loan_qty))
    ref("lendable_stability", ratio(df.stable_lendable_qty, df.lendable_qty))
    ref("rerate_pct", ratio(df.rerated_value, df.on_loan_value))
    ref("rerate_direction", rerate_direction(df.vwaf_bps, df.vwaf_prev), exact=True)
    ref("dcbs", dcbs(df.fee_bps, DEFAULT_BREAKPOINTS), exact=True)
    ref("dcbs_custom", dcbs(df.fee_bps, CUSTOM_BREAKPOINTS), exact=True)
    ref("is_htb", is_htb(df.fee_bps, 120.0), exact=True)
    ref("is_htb_60", is_htb(df.fee_bps, 60.0), exact=True)

    # Time series (SPEC 3.2), per security in date order
    ref("fwd5", per_security(df, "ret", lambda r: fwd_return(r, 5)))
    ref("fwd21", per_security(df, "ret", lambda r: fwd_return(r, 21)))
    ref("past_10", per_security(df, "ret", lambda r: past_return(r, 10)))
    ref("past_20_5", per_security(df, "ret", lambda r: past_return(r, 20, 5)))
    ref("z_fee_30", per_security(df, "fee_bps", lambda x: ts_zscore(x, 30)))
    ref("sis_60", per_security(df, "si", lambda x: ts_zscore(x, 60)))
    beta = np.full(len(df), np.nan)
    otm, pnl, near5, near10, squeeze = (np.full(len(df), np.nan) for _ in range(5))
    for _, idx in df.groupby("security_id", sort=False).indices.items():
        beta[idx] = ts_beta(df.ret.to_numpy(float)[idx], df.mkt.to_numpy(float)[idx], 60)
        q = df.q.to_numpy(float)[idx]
        p = df.close.to_numpy(float)[idx]
        o, pl, nb = cohorts(q, p, [0.05, 0.1])
        otm[idx], pnl[idx], near5[idx], near10[idx] = o, pl, nb[0.05], nb[0.1]
        squeeze[idx] = squeeze_event(df.ret.to_numpy(float)[idx], q)
    ref("beta_60", beta)
    ref("otm", otm)
    ref("pnl", pnl)
    ref("near", near5)
    ref("near_10", near10)
    ref("squeeze", squeeze, exact=True)

    # Cross sections (SPEC 3.3), per date
    ref("cs_rank_fee", cross_section(df, "fee_bps", pct_rank_exact), exact=True)
    ref("cs_zscore_fee", cross_section(df, "fee_bps", zscore))
    ref("cs_demean_fee", cross_section(df, "fee_bps", demean))
    ref("cs_normal_fee", cross_section(df, "fee_bps", normal_rank))
    ref("cs_bucket_fee", cross_section(df, "fee_bps", bucket_exact(10)), exact=True)
    # cs_bucket of the reference's own dcbs, not of lendfusion's
    dcbs_ref = pd.DataFrame({"date": df.date, "x": want["dcbs"][0]})
    ref("cs_bucket_dcbs", cross_section(dcbs_ref, "x", bucket_exact(4)), exact=True)
    ref("cs_winsor_ret", cross_section(df, "ret", winsorize(0.05)))
    groups = pd.DataFrame({"date": df.date, "group": df.security_id.str[7], "ret": df.ret})
    ref("cs_rank_ret_grouped", cross_section(groups, "ret", pct_rank_exact, keys=("date", "group")), exact=True)
    ref("fm_resid_2", fm_residual(df, "si", ["ln_cap", "btm"]))
    ref("fm_resid_4", fm_residual(df, "ret", ["fee_bps", "si", "ln_cap", "btm"]))
    return want


def check_regime(path, table, df, failures, checked):
    for name, band in [("regime", 0.15), ("regime_05", 0.05)]:
        want = regime([None if pd.isna(v) else float(v) for v in df.ret10], band)
        got = table.column(name).to_pylist()
        mism = [i for i in range(len(got)) if got[i] != want[i]]
        checked[name] = checked.get(name, 0) + len(got)
        if mism:
            i = mism[0]
            failures.append(f"{path}: {name}: {len(mism)} mismatches; first at row {i}: {got[i]!r} vs {want[i]!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", action="append", required=True,
                        help="name=folder with functions, by_date and by_security results")
    args = parser.parse_args()
    paths = parse_paths(args.path)
    failures = []
    checked = {}

    tables = load_all(paths, "functions", ["security_id", "date"])
    first = tables[paths[0][0]]
    df = first.to_pandas()
    want = reference(df)
    outputs = set(want) | {"regime", "regime_05"}
    inputs = [c for c in first.schema.names
              if c not in outputs and c not in ("date", "security_id")]
    for path, table in tables.items():
        if not same_keys(first, table, path, ["security_id", "date"], failures):
            continue
        compare_inputs(first, table, path, inputs, failures)
        for name, (values, exact) in want.items():
            checked[name] = checked.get(name, 0) + compare(path, table, name, values, failures, exact)
        check_regime(path, table, df, failures, checked)

    for query, key, fn in [("by_date", "date", by_date_ref), ("by_security", "security_id", by_security_ref)]:
        aggs = load_all(paths, query, [key])
        agg_first = aggs[paths[0][0]]
        expected = fn(df, agg_first.column(key).to_pylist())
        for path, table in aggs.items():
            if not same_keys(agg_first, table, path, [key], failures):
                continue
            for name, values in expected.items():
                checked[name] = checked.get(name, 0) + compare(path, table, name, values, failures)

    for name, n in sorted(checked.items()):
        print(f"{name:22s} {n:7d} non-NULL values compared")
    if failures:
        print("MISMATCHES:\n" + "\n".join(failures))
        return 1
    print(f"all {len(checked)} outputs agree with the reference on {len(paths)} paths: "
          + ", ".join(p for p, _ in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
