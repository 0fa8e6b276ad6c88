"""Flight throughput: the same record batches pulled through lendfusion's front door and from a
minimal pyarrow Flight server's do_get, plus a factor panel pulled through FactorPanel.

    python benches/flight_throughput.py --url grpc://127.0.0.1:50050 --data DIR [--token T]

Each pull runs RUNS times (5; FLIGHT_RUNS=n) and the fastest counts. End to end a pull runs the
query and moves its result; split into phases, one query's finished result is then moved RUNS
times by each route in turn — from the workers (endpoints with a location: a cluster with
server.result_endpoints = "workers"), the same tickets through the coordinator, and a minimal
pyarrow server's do_get of the same batches — so the routes are timed over the same stretch of
the machine's time. Prints `pull=... rows=... mib=... wall_s=... mib_per_s=... rows_per_s=...`
lines and each route's ratio to the raw do_get (the target is >= 0.67).
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

RUNS = int(os.environ.get("FLIGHT_RUNS", "5"))
TABLE_SQL = "SELECT date, security_id, on_loan_qty, lendable_qty, borrowed_qty, fee_bps FROM lending"


class RawServer(flight.FlightServerBase):
    """Serves one in-memory table on any ticket: the floor for moving these bytes."""

    def __init__(self, table):
        super().__init__("grpc://127.0.0.1:0")
        self.table = table

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)


def timed(label, pull, runs=RUNS):
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


def report_phases(label, table, query_s, transfer_s):
    mib = table.nbytes / 2**20
    print(f"pull={label}-phases rows={table.num_rows} mib={mib:.1f} query_s={query_s:.3f} "
          f"transfer_s={transfer_s:.3f} transfer_mib_per_s={mib / transfer_s:.1f}")


def statement_command(sql):
    """A Flight SQL CommandStatementQuery packed in an Any. Its only field we set, 1 (the
    query), has the wire format of a protobuf StringValue, so that message encodes it."""
    command = any_pb2.Any(
        type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
        value=wrappers_pb2.StringValue(value=sql).SerializeToString())
    return command.SerializeToString()


class RawPuller:
    """A minimal in-process Flight server holding `table`, and a client pulling it back."""

    def __init__(self, table):
        self.server = RawServer(table)
        threading.Thread(target=self.server.serve, daemon=True).start()
        self.client = flight.connect(f"grpc://127.0.0.1:{self.server.port}")

    def pull(self):
        return self.client.do_get(flight.Ticket(b"t")).read_all()

    def close(self):
        self.server.shutdown()


def best_transfers(label, raw_table, info, pull_endpoints, runs):
    """The same finished result moved `runs` times by each route — from the workers, through
    the coordinator, and by the raw server — in turn, so that each route's best pull comes
    from the same stretch of the machine's time. Returns the best seconds per route."""
    raw = RawPuller(raw_table)
    routes = {
        "": lambda: pull_endpoints(info, True),
        "-via-coordinator": lambda: pull_endpoints(info, False),
        "raw": raw.pull,
    }
    best = {route: float("inf") for route in routes}
    for _ in range(runs):
        for route, pull in routes.items():
            started = time.perf_counter()
            table = pull()
            best[route] = min(best[route], time.perf_counter() - started)
            if table.num_rows != raw_table.num_rows:
                raise RuntimeError(f"{label}{route}: {table.num_rows} rows, "
                                   f"expected {raw_table.num_rows}")
    raw.close()
    mib = raw_table.nbytes / 2**20
    print(f"pull=raw-do-get-{label} rows={raw_table.num_rows} mib={mib:.1f} "
          f"wall_s={best['raw']:.3f} mib_per_s={mib / best['raw']:.1f} "
          f"rows_per_s={raw_table.num_rows / best['raw']:.0f}")
    return best


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

    def flight_info(command):
        """GetFlightInfo: runs the command's query on the cluster."""
        return client.get_flight_info(flight.FlightDescriptor.for_command(command), options)

    def pull_endpoints(info, direct):
        """A finished result: every endpoint, from its worker (`direct`) or the coordinator."""
        return pa.concat_tables([fetch(e, direct) for e in info.endpoints])

    def front_door(command):
        """A command's result end to end: its query, then every endpoint from its worker."""
        return pull_endpoints(flight_info(command), True)

    def statement():
        from adbc_driver_flightsql import dbapi, DatabaseOptions
        db_kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {args.token}"} \
            if args.token else {}
        with dbapi.connect(args.url, db_kwargs=db_kwargs) as conn, conn.cursor() as cur:
            cur.execute(TABLE_SQL)
            return cur.fetch_arrow_table()

    def query(command):
        """The best of two GetFlightInfo calls (each runs the query); the last one's info."""
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            info = flight_info(command)
            best = min(best, time.perf_counter() - started)
        return info, best

    def pulls(label, command, end_to_end):
        """End to end (query included), then the two phases: GetFlightInfo runs the query on
        the cluster, DoGet moves the finished result — from the workers' endpoints (their
        locations: server.result_endpoints = "workers") and the same tickets through the
        coordinator — alternated with the raw server's do_get of the same batches."""
        table, wall = timed(label, end_to_end)
        info, query_s = query(command)
        best = best_transfers(label, table, info, pull_endpoints, RUNS)
        name = label.replace("-", "_")
        print(f"pull=ratio {name}_vs_raw={best['raw'] / wall:.2f}")
        for route in ["", "-via-coordinator"]:
            report_phases(f"{label}{route}", table, query_s, best[route])
            print(f"pull=ratio {name}{route.replace('-', '_')}_transfer_vs_raw="
                  f"{best['raw'] / best[route]:.2f}")
        return table

    pulls("flight-sql-table", statement_command(TABLE_SQL), statement)
    panel = lendfusion_pb2.FactorPanel(factors=[
        lendfusion_pb2.Factor(expression=f) for f in
        ["utilization", "short_interest", "days_to_cover", "fee_bps", "si_surprise"]])
    command = any_pb2.Any()
    command.Pack(panel)
    command = command.SerializeToString()
    table = pulls("factor-panel", command, lambda: front_door(command))
    # One panel row per (date, security_id) in both lending and market: the data has gaps
    # (rows missing from one table, names absent from lending), so not one per lending row.
    keys = [ds.dataset(os.path.join(args.data, t), format="parquet")
            .to_table(columns=["date", "security_id"]) for t in ("lending", "market")]
    rows = keys[0].join(keys[1], ["date", "security_id"], join_type="inner").num_rows
    if table.num_rows != rows:
        print(f"factor panel rows {table.num_rows} != lending JOIN market rows {rows}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
