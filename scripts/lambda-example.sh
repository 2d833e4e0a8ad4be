#!/usr/bin/env bash
# Serves conf/lambda-example/template.yaml (SAM's hello-world function behind GET /hello) on
# 127.0.0.1:8080, installing Lambda's Python runtime interface client if it is missing.
#   curl 'http://127.0.0.1:8080/hello?name=you'
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/setup.sh
need_python awslambdaric awslambdaric
cargo build --release
exec target/release/apigate serve --conf conf/lambda-example/template.yaml "$@"
