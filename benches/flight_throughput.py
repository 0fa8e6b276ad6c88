"""Flight throughput: the same record batches pulled through lendfusion's front door and from a
minimal pyarrow Flight server's do_get, plus a factor panel pulled through FactorPanel.

    python benches/flight_throughput.py --url grpc://127.0.0.1:50050 --data DIR [--token T]

Each pull runs twice and the faster counts. Endpoints with a location (a cluster with
server.result_endpoints = "workers") are fetched from that worker; the phase split also pulls
the same tickets through the coordinator. Prints `pull=... rows=... mib=... wall_s=... mib_per_s=... rows_per_s=...` lines and the ratio
of our table pull to the raw do_get (the target is >= 0.67).
"""

import argparse
import warnings
import os
import sys
import threading
import time

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as flight
from google.protobuf import any_pb2, wrappers_pb2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "proto", "python"))
import lendfusion_pb2  # noqa: E402

TABLE_SQL = "SELECT date, security_id, on_loan_qty, lendable_qty, borrowed_qty, fee_bps FROM lending"


class RawServer(flight.FlightServerBase):
    """Serves one in-memory table on any ticket: the floor for moving these bytes."""

    def __init__(self, table):
        super().__init__("grpc://127.0.0.1:0")
        self.table = table

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)


def timed(label, pull, runs=2):
    """The best of `runs` pulls (the first warms caches and connections)."""
    wall = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        table = pull()
        wall = min(wall, time.perf_counter() - started)
    mib = table.nbytes / 2**20
    print(f"pull={label} rows={table.num_rows} mib={mib:.1f} wall_s={wall:.3f} "
          f"mib_per_s={mib / wall:.1f} rows_per_s={table.num_rows / wall:.0f}")
    return table, wall


def timed_phases(label, command, pull, runs=2):
    """The best of `runs` (query, transfer) splits of a front-door pull of `command`."""
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        table, query_s, transfer_s = pull(command)
        best = min(best, (query_s, transfer_s), key=lambda t: t[1])
    mib = table.nbytes / 2**20
    print(f"pull={label}-phases rows={table.num_rows} mib={mib:.1f} query_s={best[0]:.3f} "
          f"transfer_s={best[1]:.3f} transfer_mib_per_s={mib / best[1]:.1f}")
    return table, best[1]


def statement_command(sql):
    """A Flight SQL CommandStatementQuery packed in an Any. Its only field we set, 1 (the
    query), has the wire format of a protobuf StringValue, so that message encodes it."""
    command = any_pb2.Any(
        type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
        value=wrappers_pb2.StringValue(value=sql).SerializeToString())
    return command.SerializeToString()


def raw_pull(label, table):
    """Serve `table` from a minimal in-process Flight server and time pulling it back."""
    server = RawServer(table)
    threading.Thread(target=server.serve, daemon=True).start()
    client = flight.connect(f"grpc://127.0.0.1:{server.port}")
    _, wall = timed(label, lambda: client.do_get(flight.Ticket(b"t")).read_all())
    server.shutdown()
    return wall


def main():
    warnings.filterwarnings("ignore", message="Cannot disable autocommit")
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--token")
    args = ap.parse_args()
    headers = [(b"authorization", f"Bearer {args.token}".encode())] if args.token else []
    options = flight.FlightCallOptions(headers=headers)
    client = flight.FlightClient(args.url)

    workers = {}

    def fetch(endpoint, direct):
        """An endpoint's batches: from the worker its location names, or via the coordinator."""
        if direct and endpoint.locations:
            uri = endpoint.locations[0].uri.decode()
            if uri not in workers:
                workers[uri] = flight.FlightClient(uri)
            return workers[uri].do_get(endpoint.ticket).read_all()
        return client.do_get(endpoint.ticket, options).read_all()

    def front_door_phases(command, direct):
        started = time.perf_counter()
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
        planned = time.perf_counter()
        table = pa.concat_tables([fetch(e, direct) for e in info.endpoints])
        return table, planned - started, time.perf_counter() - planned

    def front_door(command):
        return front_door_phases(command, True)[0]

    def statement():
        from adbc_driver_flightsql import dbapi, DatabaseOptions
        db_kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {args.token}"} \
            if args.token else {}
        with dbapi.connect(args.url, db_kwargs=db_kwargs) as conn, conn.cursor() as cur:
            cur.execute(TABLE_SQL)
            return cur.fetch_arrow_table()

    ours, ours_wall = timed("flight-sql-table", statement)
    raw_wall = raw_pull("raw-do-get-table", ours)
    print(f"pull=ratio flight_sql_vs_raw={raw_wall / ours_wall:.2f}")
    # The same statement in its two phases: GetFlightInfo runs the query on the cluster,
    # DoGet moves the finished result (the transfer the raw server is the floor for).
    # (From the workers when the endpoints have locations: server.result_endpoints = "workers";
    # then the same tickets through the coordinator.)
    for route, direct in [("", True), ("-via-coordinator", False)]:
        _, transfer_wall = timed_phases(f"flight-sql-table{route}", statement_command(TABLE_SQL),
                                        lambda c: front_door_phases(c, direct))
        print(f"pull=ratio flight_sql{route.replace('-', '_')}_transfer_vs_raw="
              f"{raw_wall / transfer_wall:.2f}")

    panel = lendfusion_pb2.FactorPanel(factors=[
        lendfusion_pb2.Factor(expression=f) for f in
        ["utilization", "short_interest", "days_to_cover", "fee_bps", "si_surprise"]])
    command = any_pb2.Any()
    command.Pack(panel)
    table, panel_wall = timed("factor-panel", lambda: front_door(command.SerializeToString()))
    raw_wall = raw_pull("raw-do-get-factor-panel", table)
    print(f"pull=ratio factor_panel_vs_raw={raw_wall / panel_wall:.2f}")
    for route, direct in [("", True), ("-via-coordinator", False)]:
        _, transfer_wall = timed_phases(f"factor-panel{route}", command.SerializeToString(),
                                        lambda c: front_door_phases(c, direct))
        print(f"pull=ratio factor_panel{route.replace('-', '_')}_transfer_vs_raw="
              f"{raw_wall / transfer_wall:.2f}")
    rows = ds.dataset(os.path.join(args.data, "lending"), format="parquet").count_rows()
    if table.num_rows != rows:
        print(f"factor panel rows {table.num_rows} != lending rows {rows}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
