#!/usr/bin/env bash
# Installs nginx-light and wrk if missing, builds apigate, and compares it with nginx as a
# reverse proxy on this machine in one run. Arguments go to compare.py (--rounds, --duration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh nginx-light wrk
cargo build --release
cargo build --release --example pingora_floor
exec python3 loadtest/compare.py "$@"
