#!/usr/bin/env bash
# Installs nginx-light and wrk if missing (and HAProxy and Caddy when apt can), builds
# apigate, and compares it with nginx, HAProxy and Caddy as reverse proxies on this machine in
# one run. Arguments go to compare.py (--rounds, --duration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh nginx-light wrk
for peer in haproxy caddy; do
  command -v "$peer" >/dev/null 2>&1 || bash scripts/setup.sh "$peer" ||
    echo "$peer could not be installed: compare.py skips it" >&2
done
cargo build --release
cargo build --release --example pingora_floor
exec python3 loadtest/compare.py "$@"
