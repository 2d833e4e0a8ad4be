#!/usr/bin/env bash
# Quick fixed-size runs with oha against a gateway on loopback: a public route and a
# JWT-authenticated one. Each run is bounded by request count (-n) and a timeout.
#   BASE_URL=http://127.0.0.1:8080 loadtest/oha.sh [requests] [connections]
set -euo pipefail
BASE_URL=${BASE_URL:-http://127.0.0.1:8080}
N=${1:-20000}
C=${2:-32}
case "$BASE_URL" in
  http://127.*|http://localhost*|http://\[::1\]*) ;;
  *) echo "BASE_URL must be a loopback address" >&2; exit 1 ;;
esac
command -v oha >/dev/null || { echo "oha is missing: cargo install oha" >&2; exit 1; }
SECRET=${JWT_SECRET:-loadtest-secret-for-loopback-only}
TOKEN=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
c = b(json.dumps({"sub": "oha", "iss": "https://issuer.local", "aud": "bench", "scope": "orders", "exp": int(time.time()) + 3600}).encode())
print(h + "." + c + "." + b(hmac.new(sys.argv[1].encode(), (h + "." + c).encode(), hashlib.sha256).digest()))
PY
)
echo "== public route: GET /items/{id}"
timeout 120 oha --no-tui -n "$N" -c "$C" "$BASE_URL/items/42"
echo "== JWT route: POST /orders/{proxy+}"
timeout 120 oha --no-tui -n "$N" -c "$C" -m POST -H "Authorization: Bearer $TOKEN" -d '{"sku":"A-1"}' "$BASE_URL/orders/7/lines"
