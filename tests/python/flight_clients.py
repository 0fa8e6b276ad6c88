"""Real Flight clients from PyPI against a running lendfusion coordinator.

Driven by tests/integration/flight.rs, which starts a coordinator and two workers and passes:
  flight_clients.py URL API_KEY USER PASSWORD TOKEN_TTL COORDINATOR_PID SCRATCH_DIR

Checks ADBC (adbc_driver_flightsql), pyarrow.flight, flightsql-dbapi, auth (no / bad /
expired token), the read-only surface and gRPC status codes (raw grpc calls, so the codes are
exact), the FactorPanel command against pandas, actions, and a >= 10 M-row result streamed
while the coordinator's memory stays bounded. Exits non-zero on the first failure.
"""

import os
import sys
import threading
import time
from pathlib import Path

import grpc
import pandas as pd
import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf import any_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "proto" / "python"))
import lendfusion_pb2  # noqa: E402

URL, API_KEY, USER, PASSWORD, TOKEN_TTL, COORDINATOR_PID, SCRATCH = sys.argv[1:8]
TOKEN_TTL = float(TOKEN_TTL)
HOSTPORT = URL.split("://", 1)[1]
BEARER = [(b"authorization", f"Bearer {API_KEY}".encode())]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


# --- raw gRPC, for exact status codes ------------------------------------------------------

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number, payload):
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def statement_command(sql):
    """A Flight SQL CommandStatementQuery packed in google.protobuf.Any, serialized."""
    query = _field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return _field(1, type_url) + _field(2, query)


CHANNEL = grpc.insecure_channel(HOSTPORT)
GET_FLIGHT_INFO = CHANNEL.unary_unary("/arrow.flight.protocol.FlightService/GetFlightInfo")
LIST_ACTIONS = CHANNEL.unary_stream("/arrow.flight.protocol.FlightService/ListActions")


def status_of(sql, metadata=(("authorization", f"Bearer {API_KEY}"),)):
    """The gRPC status code name GetFlightInfo answers for `sql` ('OK' on success)."""
    descriptor = flight.FlightDescriptor.for_command(statement_command(sql)).serialize()
    try:
        GET_FLIGHT_INFO(descriptor, metadata=metadata, timeout=120)
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details()


def still_answers():
    code, details = status_of("SELECT 1 AS one")
    check(code == "OK", f"the server stopped answering: {code} {details}")


# --- auth ----------------------------------------------------------------------------------

def test_auth():
    # No token, a bad token: UNAUTHENTICATED on every call, including ListActions.
    code, _ = status_of("SELECT 1", metadata=())
    check(code == "UNAUTHENTICATED", f"no token gave {code}")
    code, _ = status_of("SELECT 1", metadata=(("authorization", "Bearer not-a-key"),))
    check(code == "UNAUTHENTICATED", f"bad token gave {code}")
    try:
        list(LIST_ACTIONS(b"", timeout=10))
        raise AssertionError("ListActions without a token succeeded")
    except grpc.RpcError as e:
        check(e.code().name == "UNAUTHENTICATED", f"ListActions gave {e.code().name}")

    client = flight.FlightClient(URL)
    try:
        client.authenticate_basic_token(USER, "wrong password")
        raise AssertionError("a wrong password logged in")
    except flight.FlightUnauthenticatedError:
        pass
    header = client.authenticate_basic_token(USER, PASSWORD)
    check(header[0] == b"authorization" and header[1].startswith(b"Bearer "), header)
    token = header[1].decode().split(" ", 1)[1]
    options = flight.FlightCallOptions(headers=[header])
    check(len(list(client.list_actions(options))) >= 3, "actions")
    code, _ = status_of("SELECT 1", metadata=(("authorization", f"Bearer {token}"),))
    check(code == "OK", f"handshake token refused: {code}")
    # The token expires.
    time.sleep(TOKEN_TTL + 1.5)
    code, _ = status_of("SELECT 1", metadata=(("authorization", f"Bearer {token}"),))
    check(code == "UNAUTHENTICATED", f"expired token gave {code}")
    print("auth: ok")


# --- read-only surface and error codes -----------------------------------------------------

def test_read_only_and_errors():
    scratch = Path(SCRATCH)
    copied = scratch / "copied.csv"
    attacks = [
        "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc'",
        "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION 'file:///etc/passwd'",
        f"COPY (SELECT 1 AS x) TO '{copied}'",
        f"COPY lending TO '{scratch / 'lending_copy'}' STORED AS PARQUET",
        "SET datafusion.execution.batch_size = 1",
        "SET datafusion.catalog.information_schema = false",
        "CREATE VIEW leak AS SELECT * FROM lending",
        "CREATE TABLE t AS SELECT 1 AS x",
        "DROP TABLE lending",
        "INSERT INTO lending SELECT * FROM lending LIMIT 1",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/lendfusion-explain-copy.csv'",
    ]
    for sql in attacks:
        code, details = status_of(sql)
        check(code == "PERMISSION_DENIED", f"{sql!r} gave {code}: {details}")
        still_answers()
    check(not copied.exists(), "COPY wrote a file")
    check(not (scratch / "lending_copy").exists(), "COPY wrote a folder")
    check(not Path("/tmp/lendfusion-explain-copy.csv").exists(), "EXPLAIN ANALYZE COPY wrote")
    # Nothing was created: the external tables and the view do not exist.
    for table in ["etc", "pw", "leak", "t"]:
        code, _ = status_of(f"SELECT * FROM {table}")
        check(code == "NOT_FOUND", f"table {table} exists? {code}")
    # Files are not reachable as tables either.
    for sql in ["SELECT * FROM '/etc/passwd'", "SELECT * FROM 'file:///etc/hostname'"]:
        code, _ = status_of(sql)
        check(code in ("NOT_FOUND", "INVALID_ARGUMENT"), f"{sql!r} gave {code}")

    expectations = [
        ("SELEC 1", "INVALID_ARGUMENT"),
        ("SELECT no_such_function(1)", "INVALID_ARGUMENT"),
        ("SELECT no_such_column FROM lending", "INVALID_ARGUMENT"),
        ("SELECT cs_rank(fee_bps, 1, 2) OVER (PARTITION BY date) FROM lending", "INVALID_ARGUMENT"),
        ("SELECT * FROM no_such_table", "NOT_FOUND"),
        ("", "INVALID_ARGUMENT"),
        # Run-time errors the query causes, found on a worker.
        ("SELECT 1/0", "INVALID_ARGUMENT"),
        ("SELECT CAST(security_id AS INT) FROM lending", "INVALID_ARGUMENT"),
        ("SELECT dcbs(fee_bps, make_array(9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0)) FROM lending", "INVALID_ARGUMENT"),
    ]
    debug_text = ("DataFusionError(", "Shared(", "External(", "ArrowError(", "Some(", "General(")
    for sql, expected in expectations:
        code, details = status_of(sql)
        check(code == expected, f"{sql!r} gave {code}, expected {expected}: {details}")
        check(details, f"{sql!r}: no message")
        check(not any(d in details for d in debug_text), f"{sql!r}: debug text in {details!r}")
        still_answers()
    # The catalog's own tables answer (they are served by the coordinator itself).
    for sql in ["SHOW TABLES", "SELECT table_name FROM information_schema.columns WHERE column_name = 'fee_bps'"]:
        code, details = status_of(sql)
        check(code == "OK", f"{sql!r} gave {code}: {details}")
    # A command that is not ours.
    try:
        GET_FLIGHT_INFO(
            flight.FlightDescriptor.for_command(b"\x0a\x03abc").serialize(),
            metadata=(("authorization", f"Bearer {API_KEY}"),),
            timeout=10,
        )
        raise AssertionError("garbage command accepted")
    except grpc.RpcError as e:
        check(e.code().name == "INVALID_ARGUMENT", f"garbage command gave {e.code().name}")
    still_answers()
    print("read-only and errors: ok")


# --- ADBC ----------------------------------------------------------------------------------

FACTOR_QUERY = """
SELECT date, security_id,
       utilization(on_loan_qty, lendable_qty) AS util,
       cs_rank(utilization(on_loan_qty, lendable_qty)) OVER (PARTITION BY date) AS util_rank
FROM lending WHERE date BETWEEN DATE '2020-03-02' AND DATE '2020-03-31'
ORDER BY date, security_id
"""


def test_adbc():
    import adbc_driver_flightsql.dbapi as adbc
    from adbc_driver_flightsql import DatabaseOptions

    with adbc.connect(URL, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {API_KEY}"}) as conn:
        with conn.cursor() as cur:
            cur.execute(FACTOR_QUERY)
            table = cur.fetch_arrow_table()
        check(table.num_rows > 0, "ADBC: empty factor query")
        check(table.column_names == ["date", "security_id", "util", "util_rank"], table.column_names)
        frame = table.to_pandas()
        # The cross-sectional rank equals pandas' rank(pct=True) of the same utilization.
        expected = frame.groupby("date")["util"].rank(pct=True)
        diff = (expected - frame["util_rank"]).abs().max()
        check(diff < 1e-12, f"ADBC: cs_rank differs from pandas by {diff}")

        # A prepared statement with a parameter.
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) AS n FROM lending WHERE date = $1",
                parameters=(pd.Timestamp("2020-03-02").date(),),
            )
            n = cur.fetchone()[0]
        check(n == (frame["date"] == pd.Timestamp("2020-03-02").date()).sum(), f"prepared count {n}")
        with conn.cursor() as cur:
            # valid_value: NaN and +inf fees are not above the threshold (is_htb is NULL there).
            cur.execute(
                "SELECT count(*) FROM lending WHERE valid_value(fee_bps) > $1", parameters=(120.0,)
            )
            n_htb = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM lending WHERE is_htb(fee_bps)")
            check(cur.fetchone()[0] == n_htb, "prepared float parameter")

        # A prepared statement without parameters.
        with conn.cursor() as cur:
            cur.adbc_prepare("SELECT count(*) AS n FROM market")
            cur.execute("SELECT count(*) AS n FROM market")
            check(cur.fetchone()[0] > 0, "prepared statement without parameters")
        # SqlInfo.
        info = conn.adbc_get_info()
        check(info.get("vendor_name") == "lendfusion", f"GetSqlInfo: {info}")

        # Tables and schemas.
        objects = conn.adbc_get_objects(depth="columns").read_all().to_pylist()
        tables = {
            t["table_name"]
            for catalog in objects
            for schema in catalog["catalog_db_schemas"] or []
            for t in schema["db_schema_tables"] or []
        }
        check({"lending", "market", "universe", "events"} <= tables, f"tables: {tables}")
        schema = conn.adbc_get_table_schema("lending")
        check(schema.field("fee_bps").type == pa.float64(), schema)
        check(schema.field("date").type == pa.date32(), schema)
    print("adbc: ok")


# --- pyarrow.flight ------------------------------------------------------------------------

def command(message):
    packed = any_pb2.Any()
    packed.Pack(message)
    return flight.FlightDescriptor.for_command(packed.SerializeToString())


def read_all(client, info, options):
    return pa.concat_tables(
        [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
    )


def test_pyarrow_flight_and_panel():
    client = flight.FlightClient(URL)
    options = flight.FlightCallOptions(headers=BEARER)

    # Actions.
    names = {a.type for a in client.list_actions(options)}
    check({"list-functions", "list-tables", "health"} <= names, names)
    body = next(iter(client.do_action(flight.Action("list-functions", b""), options))).body
    functions = lendfusion_pb2.FunctionList.FromString(body.to_pybytes()).functions
    kinds = {(f.name, f.kind) for f in functions}
    check(("cs_rank", "window") in kinds and ("utilization", "scalar") in kinds, "functions")
    check(("utilization", "factor") in kinds, "built-in factors listed")
    body = next(iter(client.do_action(flight.Action("list-tables", b""), options))).body
    tables = {t.name: t for t in lendfusion_pb2.TableList.FromString(body.to_pybytes()).tables}
    check("lending" in tables and "squeeze_inputs" in tables, tables.keys())
    check(any(c.name == "fee_bps" and c.data_type == "Float64" for c in tables["lending"].columns), "columns")
    body = next(iter(client.do_action(flight.Action("health", b""), options))).body
    health = lendfusion_pb2.Health.FromString(body.to_pybytes())
    check(health.status == "ok" and health.workers == 2, health)

    # FactorPanel: a built-in factor and an expression, on a point-in-time universe.
    universe = read_all(client, client.get_flight_info(
        flight.FlightDescriptor.for_command(statement_command("SELECT * FROM universe")), options), options).to_pandas()
    name = universe["universe"].value_counts().index[0]
    panel = lendfusion_pb2.FactorPanel(
        factors=[
            lendfusion_pb2.Factor(expression="utilization"),
            lendfusion_pb2.Factor(expression="cs_rank(fee_bps) OVER (PARTITION BY date)", name="fee_rank"),
        ],
        universe=name,
        start_date="2020-06-01",
        end_date="2020-06-30",
        columns=["region"],
    )
    got = read_all(client, client.get_flight_info(command(panel), options), options)
    check(got.column_names == ["date", "security_id", "utilization", "fee_rank", "region"], got.column_names)
    got = got.to_pandas()
    check(len(got) > 0, "empty panel")

    # The same panel in pandas from the raw tables.
    raw = read_all(client, client.get_flight_info(flight.FlightDescriptor.for_command(statement_command(
        "SELECT l.date, l.security_id, l.on_loan_qty, l.lendable_qty, l.fee_bps, m.region "
        "FROM lending l JOIN market m ON l.date = m.date AND l.security_id = m.security_id "
        "WHERE l.date BETWEEN DATE '2020-06-01' AND DATE '2020-06-30'")), options), options).to_pandas()
    members = universe[universe["universe"] == name]
    joined = raw.merge(members, on="security_id")
    date = pd.to_datetime(joined["date"])
    inside = (pd.to_datetime(joined["start_date"]) <= date) & (
        joined["end_date"].isna() | (date <= pd.to_datetime(joined["end_date"]))
    )
    want = joined[inside].drop_duplicates(["date", "security_id"]).sort_values(["date", "security_id"])
    check(len(want) == len(got), f"panel rows {len(got)} != pandas {len(want)}")
    check((want["security_id"].values == got["security_id"].values).all(), "panel securities")
    util = want["on_loan_qty"] / want["lendable_qty"]
    util = util.where(want["lendable_qty"] > 0)
    check(((util.values - got["utilization"].values).__abs__() < 1e-12).sum() + util.isna().sum() == len(got), "utilization")
    # SPEC: NaN and infinite fees are invalid and left out of the ranks (pandas would rank inf).
    fee = want["fee_bps"].astype(float).replace([float("inf"), float("-inf")], float("nan"))
    rank = fee.groupby(want["date"]).rank(pct=True).values
    ours = got["fee_rank"].astype(float).values
    same = (pd.isna(rank) & pd.isna(ours)) | (abs(rank - ours) < 1e-12)
    check(same.all(), "fee rank within the universe")
    check((want["region"].values == got["region"].values).all(), "region")

    # FactorReport: the report's tables, computed on the cluster.
    report = lendfusion_pb2.FactorReport(factor="utilization", rebalance="monthly", table="summary")
    summary = read_all(client, client.get_flight_info(command(report), options), options).to_pandas()
    check(list(summary["sample"]) == ["full", "ex_htb"], summary)
    check({"ic_mean", "ann_return", "sharpe", "max_drawdown", "turnover"} <= set(summary.columns), summary.columns)
    check(summary["ic_mean"].iloc[0] < 0, "planted: high utilization, low returns")
    report.table = "quantile_means"
    means = read_all(client, client.get_flight_info(command(report), options), options).to_pandas()
    check(sorted(means["bucket"].unique()) == list(range(1, 11)), means)

    # A bad panel is a clear INVALID_ARGUMENT.
    bad = lendfusion_pb2.FactorPanel(factors=[lendfusion_pb2.Factor(expression="utilization")], start_date="June")
    try:
        client.get_flight_info(command(bad), options)
        raise AssertionError("bad date accepted")
    except pa.ArrowInvalid as e:  # pyarrow's mapping of INVALID_ARGUMENT
        check("YYYY-MM-DD" in str(e), str(e))
    print("pyarrow.flight and FactorPanel: ok")


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_result_streams():
    client = flight.FlightClient(URL)
    options = flight.FlightCallOptions(headers=BEARER)
    count = read_all(client, client.get_flight_info(flight.FlightDescriptor.for_command(
        statement_command("SELECT count(*) AS n FROM lending")), options), options)["n"][0].as_py()
    copies = -(-10_000_000 // count)
    sql = (
        "SELECT l.date, l.security_id, l.fee_bps, l.on_loan_qty, k.copy "
        f"FROM lending l CROSS JOIN (SELECT unnest(range(0, {copies})) AS copy) k"
    )
    pid = int(COORDINATOR_PID)
    baseline = rss_kib(pid)
    peak = [baseline]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    rows = 0
    result_bytes = 0
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_command(sql)), options)
        for endpoint in info.endpoints:
            reader = client.do_get(endpoint.ticket, options)
            for chunk in reader:
                rows += chunk.data.num_rows
                result_bytes += chunk.data.nbytes
    finally:
        done.set()
        watcher.join()
    growth_mib = (peak[0] - baseline) / 1024
    print(f"large result: {rows} rows, {result_bytes / 2**20:.0f} MiB of Arrow data; "
          f"coordinator RSS {baseline / 1024:.0f} MiB -> peak {peak[0] / 1024:.0f} MiB (+{growth_mib:.0f} MiB)")
    check(rows == count * copies and rows >= 10_000_000, f"rows {rows}")
    check(growth_mib < 0.25 * result_bytes / 2**20, "the coordinator held the result in memory")
    still_answers()


def test_flightsql_dbapi():
    from flightsql import FlightSQLClient, connect

    host, port = HOSTPORT.rsplit(":", 1)
    client = FlightSQLClient(host=host, port=int(port), token=API_KEY, insecure=True)
    conn = connect(client)
    cursor = conn.cursor()
    cursor.execute("SELECT count(*) AS n, max(fee_bps) AS top FROM lending WHERE is_htb(fee_bps)")
    n, top = cursor.fetchone()
    check(n > 0 and top > 120, (n, top))
    # XDBC type info and table types through the same client.
    info = client.get_xdbc_type_info(None)
    types = client.do_get(info.endpoints[0].ticket).read_all().to_pydict()["type_name"]
    check("DOUBLE" in types and "VARCHAR" in types, types)
    info = client.get_table_types()
    kinds = client.do_get(info.endpoints[0].ticket).read_all().to_pydict()["table_type"]
    check("TABLE" in kinds and "VIEW" in kinds, kinds)
    print("flightsql-dbapi: ok")


def test_polars():
    import adbc_driver_flightsql.dbapi as adbc
    import polars as pl
    from adbc_driver_flightsql import DatabaseOptions

    with adbc.connect(URL, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {API_KEY}"}) as conn:
        frame = pl.read_database("SELECT region, count(*) AS n FROM market GROUP BY region ORDER BY region", conn)
    check(frame.columns == ["region", "n"] and frame.height >= 1, frame)
    print("polars: ok")


if __name__ == "__main__":
    test_read_only_and_errors()
    test_adbc()
    test_pyarrow_flight_and_panel()
    test_flightsql_dbapi()
    test_polars()
    test_large_result_streams()
    test_auth()
    print("all flight client checks passed")
