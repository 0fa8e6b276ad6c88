"""Independent reference for lendfusion's lending and time-series functions (SPEC 3.1, 3.2).

Reads the inputs and outputs lendfusion computed (one Parquet file written by the Rust test),
recomputes every output from the inputs with numpy/pandas written straight from SPEC, and
compares: NULLs must match exactly, values to 1e-9 (absolute, or relative for large values).
Exit status 1 on any mismatch.
"""
import argparse
import math
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import norm, spearmanr
import statsmodels.api as sm

TOL = 1e-9
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


def pct_rank(v):
    s = pd.Series(v)
    return s.rank(method="average", pct=True).to_numpy()


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


def bucket(k):
    def f(v):
        s = pd.Series(v)
        r = s.rank(method="average")
        return np.ceil(k * r / s.notna().sum()).to_numpy(dtype=float)
    return f


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


def check_by_date(df, agg, failures, checked):
    agg = agg.sort_values("date").reset_index(drop=True)
    ic, c0, c1, c2 = [], [], [], []
    groups = df.groupby("date", sort=True)
    for date in agg.date:
        g = groups.get_group(date)
        ic.append(spearman_ref(g.fee_bps.to_numpy(float), g.fwd21.to_numpy(float)))
        b = fm_coefficients_ref(g.ret.to_numpy(float), [g.fee_bps.to_numpy(float), g.si.to_numpy(float)])
        c0.append(b[0]); c1.append(b[1]); c2.append(b[2])
    for name, want in [("ic_fee", ic), ("fm_b0", c0), ("fm_b1", c1), ("fm_b2", c2)]:
        checked[name] = compare(name, agg[name].astype(float).to_numpy(), np.array(want), failures)


def check_by_security(df, agg, failures, checked):
    agg = agg.sort_values("security_id").reset_index(drop=True)
    want = {k: [] for k in ["ann_return", "ann_vol", "sharpe", "ir", "mdd", "hit", "nw", "nw_3", "ann_return_12"]}
    groups = df.groupby("security_id", sort=True)
    for sid in agg.security_id:
        r = groups.get_group(sid).sort_values("date").ret.to_numpy(float)
        s = series_ref(r)
        for k in ["ann_return", "ann_vol", "sharpe", "ir", "mdd", "hit"]:
            want[k].append(s[k])
        want["nw"].append(nw_ref(r))
        want["nw_3"].append(nw_ref(r, 3))
        want["ann_return_12"].append(series_ref(r, 12)["ann_return"])
    for k, v in want.items():
        checked[k] = compare(k, agg[k].astype(float).to_numpy(), np.array(v), failures)


def compare(name, got, expected, failures):
    got = np.asarray(got, dtype=float)
    expected = np.asarray(expected, dtype=float)
    null_got = ~np.isfinite(got)
    null_exp = ~np.isfinite(expected)
    bad = np.nonzero(null_got != null_exp)[0]
    both = ~null_got & ~null_exp
    diff = np.abs(got - expected)
    scale = np.maximum(1.0, np.abs(expected))
    far = np.nonzero(both & (diff > TOL * scale))[0]
    if len(bad) or len(far):
        i = (list(bad) + list(far))[0]
        failures.append(f"{name}: {len(bad)} NULL mismatches, {len(far)} value mismatches; "
                        f"first at row {i}: lendfusion {got[i]!r}, reference {expected[i]!r}")
    return int(both.sum())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--by-date", help="aggregates GROUP BY date")
    parser.add_argument("--by-security", help="aggregates GROUP BY security_id")
    args = parser.parse_args()
    df = pq.read_table(args.results).to_pandas()
    df = df.sort_values(["security_id", "date"], kind="stable").reset_index(drop=True)
    failures = []
    checked = {}

    def check(name, expected):
        checked[name] = compare(name, df[name].astype(float).to_numpy(), expected, failures)

    # Lending factors (SPEC 3.1)
    check("utilization", ratio(df.on_loan_qty, df.lendable_qty))
    check("active_utilization", ratio(df.on_loan_value, df.active_lendable_value))
    check("demand_supply_ratio", ratio(df.borrowed_qty, df.lendable_qty))
    check("lending_supply", ratio(df.lendable_qty, df.shares_outstanding))
    check("short_interest", ratio(df.on_loan_qty, df.shares_outstanding))
    check("short_interest_float", ratio(df.on_loan_qty, df.float_shares))
    check("days_to_cover", ratio(df.on_loan_qty, df.adv30))
    check("on_loan_stability", ratio(df.stable_on_loan_qty, df.on_loan_qty))
    check("lendable_stability", ratio(df.stable_lendable_qty, df.lendable_qty))
    check("rerate_pct", ratio(df.rerated_value, df.on_loan_value))
    check("rerate_direction", rerate_direction(df.vwaf_bps, df.vwaf_prev))
    check("dcbs", dcbs(df.fee_bps, DEFAULT_BREAKPOINTS))
    check("dcbs_custom", dcbs(df.fee_bps, CUSTOM_BREAKPOINTS))
    check("is_htb", is_htb(df.fee_bps, 120.0))
    check("is_htb_60", is_htb(df.fee_bps, 60.0))
    for name, band in [("regime", 0.15), ("regime_05", 0.05)]:
        want = regime([None if pd.isna(v) else float(v) for v in df.ret10], band)
        got = df[name].to_numpy(dtype=object)
        mism = [i for i in range(len(df)) if (got[i] if not pd.isna(got[i]) else None) != want[i]]
        checked[name] = len(df)
        if mism:
            i = mism[0]
            failures.append(f"{name}: {len(mism)} mismatches; first at row {i}: {got[i]!r} vs {want[i]!r}")

    # Time series (SPEC 3.2), per security in date order
    check("fwd5", per_security(df, "ret", lambda r: fwd_return(r, 5)))
    check("fwd21", per_security(df, "ret", lambda r: fwd_return(r, 21)))
    check("past_10", per_security(df, "ret", lambda r: past_return(r, 10)))
    check("past_20_5", per_security(df, "ret", lambda r: past_return(r, 20, 5)))
    check("z_fee_30", per_security(df, "fee_bps", lambda x: ts_zscore(x, 30)))
    check("sis_60", per_security(df, "si", lambda x: ts_zscore(x, 60)))
    beta = np.full(len(df), np.nan)
    for _, idx in df.groupby("security_id", sort=False).indices.items():
        beta[idx] = ts_beta(df.ret.to_numpy(float)[idx], df.mkt.to_numpy(float)[idx], 60)
    check("beta_60", beta)
    otm = np.full(len(df), np.nan)
    pnl = np.full(len(df), np.nan)
    near5 = np.full(len(df), np.nan)
    near10 = np.full(len(df), np.nan)
    squeeze = np.full(len(df), np.nan)
    for _, idx in df.groupby("security_id", sort=False).indices.items():
        q = df.q.to_numpy(float)[idx]
        p = df.close.to_numpy(float)[idx]
        o, pl, nb = cohorts(q, p, [0.05, 0.1])
        otm[idx], pnl[idx], near5[idx], near10[idx] = o, pl, nb[0.05], nb[0.1]
        squeeze[idx] = squeeze_event(df.ret.to_numpy(float)[idx], q)
    check("otm", otm)
    check("pnl", pnl)
    check("near", near5)
    check("near_10", near10)
    check("squeeze", squeeze)

    # Cross sections (SPEC 3.3), per date
    check("cs_rank_fee", cross_section(df, "fee_bps", pct_rank))
    check("cs_zscore_fee", cross_section(df, "fee_bps", zscore))
    check("cs_demean_fee", cross_section(df, "fee_bps", demean))
    check("cs_normal_fee", cross_section(df, "fee_bps", normal_rank))
    check("cs_bucket_fee", cross_section(df, "fee_bps", bucket(10)))
    df["dcbs_value"] = df["dcbs"].astype(float)
    check("cs_bucket_dcbs", cross_section(df, "dcbs_value", bucket(4)))
    check("cs_winsor_ret", cross_section(df, "ret", winsorize(0.05)))
    df["group"] = df.security_id.str[7]
    check("cs_rank_ret_grouped", cross_section(df, "ret", pct_rank, keys=("date", "group")))
    check("fm_resid_2", fm_residual(df, "si", ["ln_cap", "btm"]))
    check("fm_resid_4", fm_residual(df, "ret", ["fee_bps", "si", "ln_cap", "btm"]))

    if args.by_date:
        check_by_date(df, pq.read_table(args.by_date).to_pandas(), failures, checked)
    if args.by_security:
        check_by_security(df, pq.read_table(args.by_security).to_pandas(), failures, checked)

    for name, n in sorted(checked.items()):
        print(f"{name:22s} {n:7d} non-NULL values compared")
    if failures:
        print("MISMATCHES:\n" + "\n".join(failures))
        return 1
    print(f"all {len(checked)} outputs agree with the reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
