#!/usr/bin/env bash
# Two gateways, one Redis, one limit: starts redis-server, the echo backend and two apigate
# instances on conf/example with a Redis-backed RateLimit (5 calls per minute per client),
# sends 7 requests alternating between them, and stops everything. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/setup.sh redis-server
cargo build --release
BIN=$PWD/target/release/apigate
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for port in 6390 9000 8081 9481 8082 9482; do need_free_port 127.0.0.1 $port; done

# In the background rather than daemonized, so that its pid is known (a Redis that cannot
# bind 6390 is reported, not mistaken for one already there) and cleanup stops it.
redis-server --port 6390 --save '' >"$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_for_port 127.0.0.1 6390 $! 10 "$WORK/redis.log"
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
# The gateways still print to this terminal; copies of all output go to $WORK/*.log, so that
# a process that never comes up can be diagnosed.
"$BIN" echo --listen 127.0.0.1:9000 >"$WORK/echo.log" 2>&1 & PIDS+=($!)
ECHO_PID=$!
"$BIN" serve --conf "$WORK/conf" --listen 127.0.0.1:8081 --metrics 127.0.0.1:9481 \
  > >(tee "$WORK/gw1.log") 2>&1 & PIDS+=($!)
GW1_PID=$!
"$BIN" serve --conf "$WORK/conf" --listen 127.0.0.1:8082 --metrics 127.0.0.1:9482 \
  > >(tee "$WORK/gw2.log") 2>&1 & PIDS+=($!)
GW2_PID=$!
wait_for_port 127.0.0.1 9000 $ECHO_PID 10 "$WORK/echo.log"
wait_for_port 127.0.0.1 8081 $GW1_PID 10 "$WORK/gw1.log"
wait_for_port 127.0.0.1 8082 $GW2_PID 10 "$WORK/gw2.log"

echo "== 7 requests alternating between :8081 and :8082 (limit: 5 per minute, shared):"
for port in 8081 8082 8081 8082 8081 8082 8081; do
  curl -s -o /dev/null -w ":$port -> %{http_code}  remaining %header{ratelimit-remaining}\n" "http://127.0.0.1:$port/users"
done
