#!/usr/bin/env bash
# An AGGREGATE route vs its slowest backend alone, on loopback (see aggregate_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh wrk
cargo build --release
exec python3 loadtest/aggregate_bench.py "$@"
