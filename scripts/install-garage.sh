#!/usr/bin/env bash
# Install the Garage S3-compatible server the storage tests run against (from crates.io).
# Cached under ~/.cache/lendfusion-tools so that later runs on the same machine skip the build.
set -euo pipefail
GARAGE_VERSION=2.5.0
root="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/garage"
bin="$root/bin/garage"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
  echo "garage $GARAGE_VERSION already installed at $bin"
  exit 0
fi
echo "installing garage $GARAGE_VERSION into $root (about 7-10 minutes on 2 cores, once)"
cargo install garage --version "$GARAGE_VERSION" --locked --root "$root"
"$bin" --version
