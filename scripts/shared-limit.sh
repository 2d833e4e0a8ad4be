#!/usr/bin/env bash
# Two gateways, one Redis, one limit: starts redis-server, the echo backend and two apigate
# instances on conf/example with a Redis-backed RateLimit (5 calls per minute per client),
# sends 7 requests alternating between them, and stops everything. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh redis-server
cargo build --release
BIN=$PWD/target/release/apigate
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  redis-cli -p 6390 shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing on :$1" >&2; exit 1; }

redis-server --port 6390 --save '' --daemonize yes >/dev/null
wait_port 6390
cp -r conf/example "$WORK/conf"
cat > "$WORK/conf/gateway.json" <<'JSON'
{ "RateLimitStore": { "Type": "redis", "Url": "redis://127.0.0.1:6390" } }
JSON
cat > "$WORK/conf/api.json" <<'JSON'
{
  "Name": "example",
  "Policies": {
    "RateLimit": { "Calls": 5, "PeriodSeconds": 60, "Key": "$context.identity.sourceIp" },
    "RequestParameters": {
      "overwrite:header.Api-Version": "$stageVariables.apiVersion",
      "overwrite:header.Api-Path": "$request.path"
    }
  }
}
JSON
"$BIN" echo --listen 127.0.0.1:9000 >/dev/null 2>&1 & PIDS+=($!)
"$BIN" serve --conf "$WORK/conf" --listen 127.0.0.1:8081 --metrics 127.0.0.1:9481 & PIDS+=($!)
"$BIN" serve --conf "$WORK/conf" --listen 127.0.0.1:8082 --metrics 127.0.0.1:9482 & PIDS+=($!)
wait_port 9000; wait_port 8081; wait_port 8082

echo "== 7 requests alternating between :8081 and :8082 (limit: 5 per minute, shared):"
for port in 8081 8082 8081 8082 8081 8082 8081; do
  curl -s -o /dev/null -w ":$port -> %{http_code}  remaining %header{ratelimit-remaining}\n" "http://127.0.0.1:$port/users"
done
