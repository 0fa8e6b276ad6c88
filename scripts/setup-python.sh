#!/usr/bin/env bash
# Create the virtual environment the cross-checks run in (numpy, pandas, scipy, pyarrow from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.$(sha256sum tests/python/requirements.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  touch "$stamp"
fi
echo "python ready: $venv/bin/python"
