#!/usr/bin/env bash
# Builds apigate, starts the bundled echo backend and the gateway on conf/example,
# and prints what to try. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release
BIN=target/release/apigate

"$BIN" echo --listen 127.0.0.1:9000 &
ECHO_PID=$!
# The https backend of GET /v0/postman, with a certificate from conf/example/tls/ca.pem.
"$BIN" echo --listen 127.0.0.1:9443 --tls-cert conf/example/tls/backend.pem --tls-key conf/example/tls/backend.key &
ECHO_PID="$ECHO_PID $!"
trap 'kill $ECHO_PID 2>/dev/null || true' EXIT

"$BIN" serve --conf conf/example &
GW_PID=$!
trap 'kill $GW_PID $ECHO_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -s -o /dev/null http://127.0.0.1:8080/; then break; fi
  sleep 0.1
done

cat <<'MSG'

apigate is serving conf/example at http://127.0.0.1:8080 (metrics: http://127.0.0.1:9464/metrics)
backed by the bundled echo backend at http://127.0.0.1:9000 (and https://localhost:9443). Try:

  curl -i http://127.0.0.1:8080/v0/users/42?expand=orgs     # stage v0, greedy route
  curl -i http://127.0.0.1:8080/organizations/acme           # $default stage
  curl -i http://127.0.0.1:8080/nope                         # AWS's 404
  curl -i http://127.0.0.1:8080/v0/postman                   # an https integration, verified
  kill -HUP <gateway pid>                                    # reload conf/example

Ctrl-C stops the gateway and the backend.
MSG
wait $GW_PID
