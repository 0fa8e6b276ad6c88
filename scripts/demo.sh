#!/usr/bin/env bash
# The main job: `lendfusion demo` — generates a demo panel into ./demo-data (once), starts an
# embedded coordinator with two workers, writes factor reports into ./demo-out, then serves
# Flight SQL on 127.0.0.1:50050 until Ctrl-C. Extra arguments go to `lendfusion demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --locked -p lendfusion -- demo "$@"
