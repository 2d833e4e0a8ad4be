#!/usr/bin/env bash
# Builds apigate, starts the bundled echo backend and the gateway on conf/example,
# and prints what to try. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
bash scripts/setup.sh
cargo build --release
BIN=target/release/apigate
# Both processes still print to this terminal; a copy of their output is kept so that a
# process that never comes up can be diagnosed.
for port in 9000 9443 8080 9464; do need_free_port 127.0.0.1 $port; done
LOGS=$(mktemp -d -t apigate-example.XXXXXX)

"$BIN" echo --listen 127.0.0.1:9000 > >(tee "$LOGS/echo.log") 2>&1 &
ECHO_PID=$!
# The https backend of GET /v0/postman, with a certificate from conf/example/tls/ca.pem.
"$BIN" echo --listen 127.0.0.1:9443 --tls-cert conf/example/tls/backend.pem --tls-key conf/example/tls/backend.key \
  > >(tee "$LOGS/echo-tls.log") 2>&1 &
TLS_ECHO_PID=$!
trap 'kill $ECHO_PID $TLS_ECHO_PID 2>/dev/null || true; rm -rf "$LOGS"' EXIT

"$BIN" serve --conf conf/example > >(tee "$LOGS/gateway.log") 2>&1 &
GW_PID=$!
trap 'kill $GW_PID $ECHO_PID $TLS_ECHO_PID 2>/dev/null || true; rm -rf "$LOGS"' EXIT
wait_for_port 127.0.0.1 9000 "$ECHO_PID" 10 "$LOGS/echo.log"
wait_for_port 127.0.0.1 9443 "$TLS_ECHO_PID" 10 "$LOGS/echo-tls.log"
wait_for_port 127.0.0.1 8080 "$GW_PID" 10 "$LOGS/gateway.log"

cat <<MSG

apigate is serving conf/example at http://127.0.0.1:8080 (metrics: http://127.0.0.1:9464/metrics)
backed by the bundled echo backend at http://127.0.0.1:9000 (and https://localhost:9443). Try:

  curl -i http://127.0.0.1:8080/v0/users/42?expand=orgs     # stage v0, greedy route
  curl -i http://127.0.0.1:8080/organizations/acme           # \$default stage
  curl -i http://127.0.0.1:8080/nope                         # AWS's 404
  curl -i http://127.0.0.1:8080/v0/postman                   # an https integration, verified
  curl -i http://127.0.0.1:8080/v0/users/42/profile          # AGGREGATE: users + organizations
$(printf '  %-59s# reload conf/example' "kill -HUP $GW_PID")

Ctrl-C stops the gateway and the backend.
MSG
wait $GW_PID
