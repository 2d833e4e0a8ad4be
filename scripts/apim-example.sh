#!/usr/bin/env bash
# Builds apigate, starts the bundled echo backend and the gateway on conf/apim-example (an
# Azure API Management configuration as APIOps keeps it), and prints what to try, with a
# token the users API accepts. Ctrl-C stops both. APIGATE_BIN runs another build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
if [ -z "${APIGATE_BIN:-}" ]; then
  cargo build --release
fi
BIN=${APIGATE_BIN:-target/release/apigate}
for port in 9000 8080 9464; do need_free_port 127.0.0.1 $port; done
LOGS=$(mktemp -d -t apigate-apim-example.XXXXXX)

"$BIN" echo --listen 127.0.0.1:9000 > >(tee "$LOGS/echo.log") 2>&1 &
ECHO_PID=$!
trap 'kill $ECHO_PID 2>/dev/null || true; rm -rf "$LOGS"' EXIT
"$BIN" serve --conf conf/apim-example > >(tee "$LOGS/gateway.log") 2>&1 &
GW_PID=$!
trap 'kill $GW_PID $ECHO_PID 2>/dev/null || true; rm -rf "$LOGS"' EXIT
# A TERM to this script (not only Ctrl-C to the whole group) stops both too.
trap 'exit 143' TERM
wait_for_port 127.0.0.1 9000 "$ECHO_PID" 10 "$LOGS/echo.log"
wait_for_port 127.0.0.1 8080 "$GW_PID" 10 "$LOGS/gateway.log"

# An HS256 token signed with the example's jwt-signing-key named value, valid for an hour.
TOKEN=$(python3 - <<'PY'
import base64, hashlib, hmac, json, time
key = base64.b64decode("YXBpZ2F0ZS1hcGltLWV4YW1wbGUta2V5LTAxMjM0NTY3ODk=")
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
now = int(time.time())
body = b64(json.dumps({"iss": "https://issuer.example", "aud": "apigate-example",
                       "sub": "demo", "iat": now, "exp": now + 3600}).encode())
sig = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
)

cat <<MSG

apigate is serving conf/apim-example (APIM artifacts) at http://127.0.0.1:8080
backed by the bundled echo backend at http://127.0.0.1:9000. Try:

  curl -i http://127.0.0.1:8080/organizations/acme     # public: Api-Version, Api-Path set
  curl -i http://127.0.0.1:8080/users/42               # 401 as APIM answers it
  curl -i -H "Authorization: Bearer $TOKEN" \\
       http://127.0.0.1:8080/users/42
  curl -i http://127.0.0.1:8080/nope                   # APIM's 404

Ctrl-C stops the gateway and the backend.
MSG
wait $GW_PID
