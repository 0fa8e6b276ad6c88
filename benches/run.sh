#!/usr/bin/env bash
# The benchmark of docs/benchmarks.md in one command:
#
#   benches/run.sh            # full run: ~5 M panel rows, peers, scaling, 2 workers, Flight
#   benches/run.sh --smoke    # tiny data, every step once (what CI runs, so nothing rots)
#
# LENDFUSION_BIN=path uses that binary instead of building one; PEERS=duckdb,polars limits the
# peers of a full run; RUNS=n sets how many runs of our jobs the median is taken over (3).
#
# Writes $BENCH_DIR/results.txt (default target/bench): one `key=value` line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-full}"
bench="${BENCH_DIR:-target/bench}"
mkdir -p "$bench"
results="$bench/results.txt"
: > "$results"

scripts/setup-python.sh >/dev/null
python="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/venv/bin/python"
if [ "$mode" = "--smoke" ]; then
  profile=debug
  [ -n "${LENDFUSION_BIN:-}" ] || cargo build --workspace --locked --bin lendfusion
  sizes=(40)          # securities; 1 year
  main=40
  years=("2019-01-01" "2019-12-31")
  peers="duckdb,polars,pandas,spark"
  runs=1
else
  profile=release
  [ -n "${LENDFUSION_BIN:-}" ] || cargo build --locked --release -p lendfusion
  sizes=(1525 6100 24400)   # 1x, 4x, 16x rows over four years; 6100 (5.08 M rows) is the main panel
  main=6100
  years=("2016-01-01" "2019-12-31")
  peers="${PEERS:-duckdb,polars,pandas,spark}"
  runs="${RUNS:-3}"   # our jobs: the median of three runs (single runs vary by ~20 % here)
fi
lf="${LENDFUSION_BIN:-target/$profile/lendfusion}"
log() { echo "$*" | tee -a "$results"; }
# The run with the median wall_s of $runs runs of a command that prints one wall_s= line first.
# Each run starts after `sync`: an earlier run's output still being written back (hundreds of
# MB) would otherwise compete with it for the disk and for system time.
median_of_runs() {
  for _ in $(seq 1 "$runs"); do sync; "$@" | sed -n 1p; done \
    | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^wall_s=/) { split($i, w, "="); print w[2], $0 } }' \
    | sort -n | awk -v n="$runs" 'NR == int((n + 1) / 2) { $1 = ""; sub(/^ /, ""); print }'
}

for n in "${sizes[@]}"; do
  data="$bench/data-$n"
  if [ ! -f "$data/_truth.json" ]; then
    "$lf" generate --out "$data" --securities "$n" --start "${years[0]}" --end "${years[1]}" \
      --seed 11 --overwrite >/dev/null
  fi
  out="$bench/out-$n"
  line=$(median_of_runs "$lf" bench factor-panel --data "$data" --out "$out")
  log "job=factor-panel securities=$n runs=$runs $line"
  line=$(median_of_runs "$lf" bench scan-floor --data "$data")
  log "job=scan-floor securities=$n runs=$runs $line"
done

data="$bench/data-$main"
out="$bench/out-$main"
# Peers on the main panel, each checked against our panel.parquet / ic.parquet first.
"$python" benches/peers/peers.py --data "$data" --ours "$out" --peers "$peers" \
  | sed "s/^peer=/job=factor-panel securities=$main engine=/" | tee -a "$results"

# Two worker processes (one task slot each) behind a coordinator on loopback.
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
client=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
export LENDFUSION_DATA="$data" LENDFUSION_LOG=error
# Clients fetch result partitions from the workers (signed tickets; one hop for the bytes).
export LENDFUSION_CLUSTER__SECRET="bench-$RANDOM-$RANDOM"
LENDFUSION_SERVER__RESULT_ENDPOINTS=workers \
  "$lf" coordinator --scheduler-port "$port" --port "$client" --ops-port 0 --no-auth >"$bench/coordinator.log" 2>&1 &
pids+=($!)
for i in 1 2; do
  "$lf" worker --coordinator "127.0.0.1:$port" --slots 1 --port 0 --task-port 0 >"$bench/worker-$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 120); do
  if "$lf" sql --coordinator "grpc://127.0.0.1:$client" "SELECT 1" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
line=$(median_of_runs "$lf" bench factor-panel --coordinator "grpc://127.0.0.1:$client" --out "$bench/out-cluster")
log "job=factor-panel securities=$main workers=2 runs=$runs $line"
"$python" benches/peers/peers.py --compare "$out" "$bench/out-cluster" \
  | sed "s/^/job=agreement engine=2-workers /" | tee -a "$results"

# Flight: a factor panel and a table pulled from the cluster (from the workers' endpoints, and
# through the coordinator) vs a raw do_get.
"$python" benches/flight_throughput.py --url "grpc://127.0.0.1:$client" --data "$data" \
  | sed "s/^/job=flight securities=$main /" | tee -a "$results"
echo "results: $results"
