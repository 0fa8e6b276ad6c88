#!/usr/bin/env bash
# Run every test: installs what the tests need (Garage for S3, Python packages for the
# reference cross-checks), then the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-garage.sh
scripts/setup-python.sh
scripts/install-chromium.sh
export LENDFUSION_PYTHON="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/venv/bin/python"
export LENDFUSION_GARAGE_BIN="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/garage/bin/garage"
# The cluster tests start `lendfusion coordinator` / `lendfusion worker` processes: build the
# binary first (cargo test builds it too, but this makes the dependency explicit). `--workspace`:
# with `-p` Cargo would unify dependency features differently and build DataFusion twice.
cargo build --workspace --locked --bin lendfusion
# Two cores: one test thread per core keeps the Garage test and the panels from starving.
cargo test --workspace --locked --no-fail-fast -- --test-threads=2
