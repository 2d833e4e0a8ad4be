#!/usr/bin/env bash
# Runs every test: formatting, lints, unit and integration tests (real gateway, real
# backends, real Redis on loopback), then the black-box conformance suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/setup.sh redis-server prometheus
need_python cryptography cryptography
# tests/lambda.rs runs real Python handlers through Lambda's runtime interface client.
need_python awslambdaric,aws_lambda_powertools,pydantic awslambdaric aws-lambda-powertools pydantic

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
cargo build --release
if [ -d ../shared/conformance ]; then
  python3 ../shared/conformance/run.py
else
  echo "../shared/conformance not found: skipping the conformance suite"
fi
