"""Shared pieces of the cross-checks: reading each path's results, exact ranks, comparisons.

A *path* is one way the same SQL ran (embedded, `lendfusion sql --data` as CSV, an embedded
cluster, worker processes); each wrote one file per query into its folder: `<query>.parquet`, or
`<query>.csv` as `lendfusion sql --format csv` printed it. The reference is computed once, from the
first path's inputs, and every path's outputs are compared with it.

Comparisons: NULL positions always exactly; an output is never NaN or infinite (SPEC §1: such
results are NULL); ranks, buckets, integer scores and Booleans exactly; other values to 1e-9
(absolute, or relative for large values).
"""
import math
import os
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TOL = 1e-9


def parse_paths(values):
    """`name=folder` arguments as an ordered list of (name, folder)."""
    out = []
    for v in values:
        name, _, folder = v.partition("=")
        if not folder:
            raise SystemExit(f"--path wants name=folder, got {v!r}")
        out.append((name, folder))
    return out


def load(folder, query, schema=None):
    """The result of `query` on one path as a pyarrow Table. A CSV is parsed with the column
    types of `schema` (the first path's), "" as NULL and every other text as a value: floats
    print round-trip, so they parse back to the same double; `NaN` and `inf` are values."""
    parquet = os.path.join(folder, f"{query}.parquet")
    if os.path.exists(parquet):
        return pq.read_table(parquet)
    csv = os.path.join(folder, f"{query}.csv")
    if schema is None:
        raise SystemExit(f"{csv}: the first path must be Parquet (it gives the column types)")
    convert = pacsv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        null_values=[""],
        strings_can_be_null=True,
        true_values=["true"],
        false_values=["false"],
    )
    table = pacsv.read_csv(csv, convert_options=convert)
    if table.schema.names != schema.names:
        raise SystemExit(f"{csv}: columns {table.schema.names} differ from {schema.names}")
    return table


def load_all(paths, query, keys):
    """`query`'s result on every path, each sorted by `keys`: {path name: Table}."""
    tables = {}
    schema = None
    for name, folder in paths:
        t = load(folder, query, schema)
        if schema is None:
            schema = t.schema
        tables[name] = t.sort_by([(k, "ascending") for k in keys])
    return tables


def floats(table, column):
    """A numeric or Boolean column as float64 with NULL as NaN (inputs: NaN and NULL are both
    invalid)."""
    a = table.column(column).combine_chunks()
    if pa.types.is_boolean(a.type):
        a = pc.cast(a, pa.int8())
    return pc.fill_null(pc.cast(a, pa.float64()), float("nan")).to_numpy(zero_copy_only=False)


def nulls(table, column):
    return table.column(column).combine_chunks().is_null().to_numpy(zero_copy_only=False)


def non_finite_values(table, column):
    """Rows where an output is a non-NULL NaN or ±inf (a function must return NULL instead)."""
    a = table.column(column).combine_chunks()
    if not pa.types.is_floating(a.type):
        return np.zeros(len(a), dtype=bool)
    v = a.to_numpy(zero_copy_only=False)
    return ~nulls(table, column) & ~np.isfinite(v)


def describe(table, i):
    keys = [k for k in ("date", "security_id") if k in table.schema.names]
    return " ".join(str(table.column(k)[i].as_py()) for k in keys) or f"row {i}"


def compare(path, table, column, expected, failures, exact=False, sql=False):
    """Compare one output column with the reference (`expected`: floats, NaN = NULL).

    `sql`: the column is plain SQL arithmetic (`a - b`), not a lendfusion function, so NaN and
    ±inf are allowed and count as invalid, like NULL."""
    name = f"{path}: {column}"
    expected = np.asarray(expected, dtype=float)
    got_null = nulls(table, column)
    got = floats(table, column)
    if sql:
        got_null = got_null | ~np.isfinite(got)
        bad_value = np.zeros(0, dtype=int)
    else:
        bad_value = np.nonzero(non_finite_values(table, column))[0]
    exp_null = np.isnan(expected)
    bad_null = np.nonzero(got_null != exp_null)[0]
    both = ~got_null & ~exp_null
    if exact:
        far = np.nonzero(both & (got != expected))[0]
    else:
        with np.errstate(invalid="ignore"):
            diff = np.abs(got - expected)
        far = np.nonzero(both & (diff > TOL * np.maximum(1.0, np.abs(expected))))[0]
    problems = [(bad_value, "NaN/inf returned"), (bad_null, "NULL mismatches"),
                (far, "exact mismatches" if exact else "value mismatches")]
    if any(len(p) for p, _ in problems):
        first = min(int(p[0]) for p, _ in problems if len(p))
        counts = ", ".join(f"{len(p)} {what}" for p, what in problems if len(p))
        shown = None if got_null[first] else got[first]
        failures.append(f"{name}: {counts}; first at {describe(table, first)}: "
                        f"lendfusion {shown!r}, reference {expected[first]!r}")
    return int(both.sum())


def compare_inputs(first, other, path, columns, failures):
    """The inputs a path read must be the first path's: the same invalid cells, the same values
    (to 1e-12 for window averages, whose summation order may differ between plans)."""
    for c in columns:
        a, b = floats(first, c), floats(other, c)
        va, vb = np.isfinite(a), np.isfinite(b)
        same_class = (va == vb) & (np.isnan(a) == np.isnan(b)) & ((a == b) | ~np.isinf(a))
        with np.errstate(invalid="ignore"):
            ok = same_class & (~va | (np.abs(a - b) <= 1e-12 * np.maximum(1.0, np.abs(a))))
        if not ok.all():
            i = int(np.nonzero(~ok)[0][0])
            failures.append(f"{path}: input {c} differs from the first path's at "
                            f"{describe(other, i)}: {b[i]!r} vs {a[i]!r}")


def same_keys(first, other, path, keys, failures):
    if first.num_rows != other.num_rows:
        failures.append(f"{path}: {other.num_rows} rows, the first path has {first.num_rows}")
        return False
    for k in keys:
        if not first.column(k).equals(other.column(k)):
            failures.append(f"{path}: column {k} differs from the first path's")
            return False
    return True


# Exact ranks. An average-tie rank r is a whole or half number; `twice` is 2r, an integer.

def twice_ranks(values, key=None):
    """Twice the average-tie rank (1 = smallest) of each valid value, and the number n of valid
    values. `values` is a sequence with None for invalid; values tie when they are equal (or
    when `key` maps them to equal keys)."""
    valid = [(v if key is None else key(v), i) for i, v in enumerate(values) if v is not None]
    valid.sort(key=lambda t: t[0])
    twice = [None] * len(values)
    i = 0
    while i < len(valid):
        j = i + 1
        while j < len(valid) and valid[j][0] == valid[i][0]:
            j += 1
        for _, row in valid[i:j]:
            twice[row] = i + 1 + j  # ranks i+1 ..= j: twice their mean
        i = j
    return twice, len(valid)


def finite_or_none(x):
    """Floats as Python numbers, None where invalid (NULL, NaN, ±inf)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(x, dtype=float)]


def pct_rank_exact(x):
    """cs_rank: r / n as the correctly rounded double of the exact fraction."""
    twice, n = twice_ranks(finite_or_none(x))
    return np.array([t / (2 * n) if t is not None else np.nan for t in twice])


def bucket_exact(k):
    def f(x):
        twice, n = twice_ranks(finite_or_none(x))
        return np.array([-(-k * t // (2 * n)) if t is not None else np.nan for t in twice], dtype=float)
    return f


def sql_round_percent(r):
    """SQL round(100 * r) of a non-negative Fraction r, halves away from zero."""
    return math.floor(100 * r + Fraction(1, 2))


def rank_of_mean(columns, rows):
    """`round(100 * cs_rank(mean))` of the per-row mean of rank fractions, in Fractions.

    `columns` are (twice, n) pairs from `twice_ranks`; a row's mean is over its available
    columns, NULL when none is."""
    means = []
    for i in range(rows):
        parts = [Fraction(t[i], 2 * n) for t, n in columns if t[i] is not None]
        means.append(sum(parts, Fraction(0)) / len(parts) if parts else None)
    twice, n = twice_ranks(means)
    return np.array([sql_round_percent(Fraction(t, 2 * n)) if t is not None else np.nan for t in twice],
                    dtype=float)
