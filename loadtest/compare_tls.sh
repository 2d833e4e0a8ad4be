#!/usr/bin/env bash
# TLS benchmark: installs nginx-light, wrk, openssl and h2load (nghttp2-client) if missing,
# builds apigate, and compares it with nginx terminating TLS, proxying to an https backend,
# and serving HTTP/2, in one run. Arguments go to compare_tls.py (--rounds, --duration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh nginx-light wrk openssl nghttp2-client
cargo build --release
exec python3 loadtest/compare_tls.py "$@"
