"""Results fetched from the workers with signed tickets (server.result_endpoints = "workers").

Driven by tests/integration/flight.rs, which starts a coordinator and two workers sharing
cluster.secret and passes:
  worker_endpoints.py URL API_KEY DATA_ROOT

Checks that a result's FlightInfo has one endpoint per partition, located at the workers (not
the coordinator); that pyarrow fetching each endpoint from its location, without any
credentials, gets exactly the rows of the Parquet files (read here with pyarrow.dataset);
that the same tickets redeemed at the coordinator give the same batches; that ADBC (which
follows locations) gets the same answer, ordered results included; and that an altered
ticket is refused with PERMISSION_DENIED by the worker and by the coordinator.
"""

import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.flight as flight
from google.protobuf import any_pb2, wrappers_pb2

URL, API_KEY, DATA_ROOT = sys.argv[1:4]
BEARER = [(b"authorization", f"Bearer {API_KEY}".encode())]
OPTIONS = flight.FlightCallOptions(headers=BEARER)
COLUMNS = ["date", "security_id", "fee_bps", "on_loan_qty"]
QUERY = f"SELECT {', '.join(COLUMNS)} FROM lending"


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def statement(sql):
    """CommandStatementQuery in an Any (its query is field 1: StringValue's encoding)."""
    packed = any_pb2.Any()
    packed.type_url = "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    packed.value = wrappers_pb2.StringValue(value=sql).SerializeToString()
    return flight.FlightDescriptor.for_command(packed.SerializeToString())


def sorted_table(table):
    return table.select(COLUMNS).sort_by([("date", "ascending"), ("security_id", "ascending")])


def expected_lending():
    dataset = ds.dataset(f"{DATA_ROOT}/lending", format="parquet", partitioning="hive")
    return sorted_table(dataset.to_table(columns=COLUMNS))


def main():
    coordinator = flight.FlightClient(URL)
    expected = expected_lending()
    check(expected.num_rows > 0, "no rows in the test panel")

    info = coordinator.get_flight_info(statement(QUERY), OPTIONS)
    check(len(info.endpoints) > 1, f"one endpoint per partition expected, got {len(info.endpoints)}")
    coordinator_port = URL.rsplit(":", 1)[1]
    locations = set()
    for endpoint in info.endpoints:
        check(len(endpoint.locations) == 1, f"locations: {endpoint.locations}")
        uri = endpoint.locations[0].uri.decode()
        check(uri.startswith("grpc+tcp://"), uri)
        check(not uri.endswith(f":{coordinator_port}"), f"{uri} is the coordinator")
        locations.add(uri)

    # From the workers, with the ticket as the only credential.
    tables = []
    for endpoint in info.endpoints:
        worker = flight.FlightClient(endpoint.locations[0].uri.decode())
        tables.append(worker.do_get(endpoint.ticket).read_all())
        worker.close()
    direct = pa.concat_tables(tables)
    check(direct.schema.equals(info.schema), f"{direct.schema} vs {info.schema}")
    # pandas' equals treats NaN cells (the data has gaps) in the same place as equal; Arrow's does not.
    check(
        sorted_table(direct).to_pandas().equals(expected.to_pandas()),
        "worker results differ from the Parquet files",
    )

    # The same tickets at the coordinator (clients that ignore locations).
    proxied = pa.concat_tables(
        [coordinator.do_get(e.ticket, OPTIONS).read_all() for e in info.endpoints]
    )
    check(
        proxied.to_pandas().equals(direct.to_pandas()),
        "the coordinator's copy differs from the workers'",
    )

    # An altered ticket: refused by the worker and by the coordinator.
    endpoint = info.endpoints[0]
    raw = bytearray(endpoint.ticket.ticket)
    raw[-1] ^= 1
    altered = flight.Ticket(bytes(raw))
    worker = flight.FlightClient(endpoint.locations[0].uri.decode())
    for client, options in [(worker, flight.FlightCallOptions()), (coordinator, OPTIONS)]:
        try:
            client.do_get(altered, options).read_all()
            raise AssertionError("an altered ticket was served")
        except flight.FlightUnauthorizedError as e:
            check("signature" in str(e), str(e))

    # ADBC follows the locations; an ordered result comes back in order.
    import adbc_driver_flightsql.dbapi as adbc
    from adbc_driver_flightsql import DatabaseOptions

    with adbc.connect(URL, db_kwargs={DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {API_KEY}"}) as conn:
        with conn.cursor() as cur:
            cur.execute(QUERY)
            table = cur.fetch_arrow_table()
        check(
            sorted_table(table).to_pandas().equals(expected.to_pandas()),
            "ADBC result differs from the Parquet files",
        )
        with conn.cursor() as cur:
            # valid_value: in SQL's total order a NaN fee is above 50; here it is not.
            cur.execute(
                f"{QUERY} WHERE valid_value(fee_bps) > 50 ORDER BY fee_bps DESC, security_id, date"
            )
            ordered = cur.fetch_arrow_table()
    fees = ordered.column("fee_bps").combine_chunks()
    fee = expected.column("fee_bps")
    above = pc.and_(pc.is_finite(fee), pc.greater(fee, 50))
    check(ordered.num_rows == pc.sum(above).as_py(), "rows")
    check(pc.all(pc.greater_equal(fees[:-1], fees[1:])).as_py(), "ORDER BY order lost")
    print(f"worker endpoints: ok ({len(info.endpoints)} endpoints, {direct.num_rows} rows)")


main()
