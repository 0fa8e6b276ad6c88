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
# The Compose specification's JSON schema, as the docker-compose 1.29.2 wheel carries it (the
# deploy test validates deploy/compose.yaml against it; the wheel is read, never installed).
compose_spec="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/compose-spec"
if [ ! -f "$compose_spec/docker_compose-1.29.2-py2.py3-none-any.whl" ]; then
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -d "$compose_spec" docker-compose==1.29.2
fi
echo "python ready: $venv/bin/python"
