#!/usr/bin/env bash
# Headless Chromium for the tearsheet rendering test (Debian's package), installed once.
set -euo pipefail
if [ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q chromium >/dev/null 2>&1 || {
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q chromium >/dev/null
}
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null || true)"
