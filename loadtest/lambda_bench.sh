#!/usr/bin/env bash
# Lambda routes under load vs a plain Python server with the same handler (see lambda_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh wrk
python3 -c 'import awslambdaric' 2>/dev/null || python3 -m pip install -q awslambdaric
cargo build --release
exec python3 loadtest/lambda_bench.py "$@"
