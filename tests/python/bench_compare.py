"""The benchmark's agreement check fails on every kind of disagreement.

    python tests/python/bench_compare.py OUT_DIR

OUT_DIR holds `lendfusion bench factor-panel` outputs (panel.parquet, ic.parquet) on gappy
data. A copy must agree with them; each copy changed in one way (a rank one ulp off, a
composite 1e-6 off, a NULL where ours has a value and the reverse, a NaN or an infinity instead
of a value, a row missing, a key changed, a column missing, an IC off), at a row far from the
start, must not. Prints `ok` and one line per case.
"""

import importlib.util
import os
import shutil
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
spec = importlib.util.spec_from_file_location(
    "peers", os.path.join(ROOT, "benches", "peers", "peers.py"))
peers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peers)


def late(mask):
    """The last row where mask holds (far from rows 0 and 1)."""
    rows = np.flatnonzero(mask)
    assert rows.size, "no row to change"
    return rows[-1]


def with_column(table, name, values):
    i = table.column_names.index(name)
    return table.set_column(i, table.schema.field(name), pa.array(values, type=pa.float64()))


def set_value(table, name, pick, value):
    """table with one value of column `name` replaced (the row `pick(values, is_null)` picks;
    None writes NULL)."""
    column = table[name].combine_chunks()
    values = column.to_pylist()
    i = pick(np.array([v is None for v in values]))
    values[i] = value(values[i]) if callable(value) else value
    return with_column(table, name, values)


def valid(nulls):
    return late(~nulls)


def null(nulls):
    return late(nulls)


CASES = {
    "rank one ulp off": ("panel", lambda t: set_value(
        t, "rank_util", valid, lambda v: float(np.nextafter(v, 2.0)))),
    "composite 1e-6 off": ("panel", lambda t: set_value(t, "composite", valid,
                                                        lambda v: v + 1e-6)),
    "a value where ours is NULL": ("panel", lambda t: set_value(t, "resid", null, 0.0)),
    "NULL where ours has a value": ("panel", lambda t: set_value(t, "rank_sis", valid, None)),
    "NaN for a value": ("panel", lambda t: set_value(t, "fwd21", valid, float("nan"))),
    "NaN for a NULL": ("panel", lambda t: set_value(t, "rank_dtc", null, float("nan"))),
    "infinity for a value": ("panel", lambda t: set_value(t, "rank_fee", valid,
                                                          float("inf"))),
    "a row missing": ("panel", lambda t: t.slice(0, t.num_rows - 1)),
    "a key changed": ("panel", lambda t: t.set_column(
        t.column_names.index("security_id"), "security_id",
        pa.array(t["security_id"].to_pylist()[:-1] + ["ZZZZ"]))),
    "a column missing": ("panel", lambda t: t.drop_columns(["rank_si"])),
    "IC 1e-3 off": ("ic", lambda t: set_value(t, "ic", valid, lambda v: v + 1e-3)),
    "IC NULL for a value": ("ic", lambda t: set_value(t, "ic", valid, None)),
}


def main():
    ours = sys.argv[1]
    tables = {k: pq.read_table(os.path.join(ours, f"{k}.parquet")) for k in ("panel", "ic")}
    for k, t in tables.items():
        assert t.num_rows > 2, f"{k}: {t.num_rows} rows"
    # Gappy data: the panel has NULLs to get right.
    assert tables["panel"]["rank_dtc"].null_count > 0, "no NULL in rank_dtc"
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "same")
        shutil.copytree(ours, copy)
        problems = peers.compare(ours, copy)
        assert not problems, f"an identical copy disagrees: {problems}"
        print("ok identical copy agrees")
        failed = []
        for case, (which, change) in CASES.items():
            other = os.path.join(tmp, case.replace(" ", "-"))
            os.makedirs(other)
            for k, t in tables.items():
                pq.write_table(change(t) if k == which else t,
                               os.path.join(other, f"{k}.parquet"))
            problems = peers.compare(ours, other)
            if problems:
                print(f"ok {case}: {problems[0]}")
            else:
                print(f"MISSED {case}")
                failed.append(case)
        if failed:
            print(f"the comparison missed: {failed}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
