#!/usr/bin/env bash
# Regenerate the checked-in code of proto/lendfusion.proto (Rust with prost-build, Python with
# protobuf), using the protoc bundled with grpcio-tools from PyPI. With --check, regenerate into
# a temporary folder and fail if the checked-in code differs (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh >/dev/null
python="${LENDFUSION_TOOLS:-$HOME/.cache/lendfusion-tools}/venv/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# prost-build wants a protoc executable: a wrapper around grpc_tools' protoc.
cat >"$work/protoc" <<WRAP
#!/usr/bin/env bash
exec "$python" -m grpc_tools.protoc "\$@"
WRAP
chmod +x "$work/protoc"
mkdir -p "$work/rust" "$work/python"
PROTOC="$work/protoc" cargo run --quiet --locked -p lendfusion-proto --features regen \
  --bin regen-proto -- "$work/rust"
"$python" -m grpc_tools.protoc -Iproto --python_out="$work/python" proto/lendfusion.proto
if [ "${1:-}" = "--check" ]; then
  if ! diff -u proto/src/lendfusion.v1.rs "$work/rust/lendfusion.v1.rs" ||
     ! diff -u proto/python/lendfusion_pb2.py "$work/python/lendfusion_pb2.py"; then
    echo "proto/: the checked-in generated code is out of date; run scripts/regen-proto.sh" >&2
    exit 1
  fi
  echo "proto/: generated code up to date"
else
  cp "$work/rust/lendfusion.v1.rs" proto/src/lendfusion.v1.rs
  cp "$work/python/lendfusion_pb2.py" proto/python/lendfusion_pb2.py
  echo "proto/: regenerated"
fi
