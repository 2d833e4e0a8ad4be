#!/usr/bin/env bash
# Renders conf/grafana/apigate-dashboard.json against real traffic into docs/dashboard.png
# (Grafana itself is not needed: conf/grafana/render.py draws the panels from Prometheus).
#
# Starts on loopback, on free ports: the bundled echo backend, a slow Python backend, an apigate
# gateway on a generated config, and a Prometheus scraping the gateway every second. Drives
# three phases of mixed traffic with wrk (200s, POST bodies, JWT 200/401, throttled 429s,
# dead-backend 502s, slow-backend 503 timeouts, 404s), reloads the config once successfully
# and once with a broken file, then renders every panel and prints a per-query table.
# Exits non-zero if any dashboard query is invalid PromQL. Takes about 75 s.
#
#   scripts/dashboard-snapshot.sh [OUT.png]      (default docs/dashboard.png)
#   PHASE_SECONDS=20  traffic phase length (three phases)
#   APIGATE_BIN=...   use this binary instead of target/release/apigate
#
# Load stays modest (another process may be profiling on this machine): wrk's Lua `delay()`
# paces each connection, so the mix runs at roughly 500-1500 req/s on one gateway thread.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/docs/dashboard.png}")
PHASE_SECONDS=${PHASE_SECONDS:-20}
BIN=${APIGATE_BIN:-$ROOT/target/release/apigate}

die() { echo "dashboard-snapshot: $*" >&2; exit 1; }
for tool in prometheus wrk curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install prometheus wrk curl python3)"
done
if [[ ! -x $BIN ]]; then
  (cd "$ROOT" && cargo build --release)
fi
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib \
  || die "matplotlib is missing: pip install matplotlib (or apt-get install python3-matplotlib)"

TMP=$(mktemp -d -t apigate-snapshot.XXXXXX)
PIDS=()        # long-lived processes
PHASE_PIDS=()  # the wrk runs of the current traffic phase
# Stops what this script started (TERM, then KILL after 10 s) and removes the temp dir.
cleanup() {
  local rc=$?
  for pid in "${PHASE_PIDS[@]}" "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PHASE_PIDS[@]}" "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for log in "$TMP"/*.log; do [[ -s $log ]] && { echo "--- tail of $log"; tail -n 5 "$log"; }; done >&2
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Six distinct free loopback ports (all bound at once, so no duplicates). DEAD is never
# listened on: the /broken route's backend refuses connections, giving 502s.
read -r ECHO SLOW GW METRICS PROM DEAD < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

# Polls URL until it answers 2xx, or fails after 30 s (or when the process PID died).
wait_http() {
  local url=$1 pid=$2
  for _ in $(seq 300); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "process for $url exited early"
    sleep 0.1
  done
  die "no answer from $url"
}
# Polls Prometheus until the PromQL expression returns a series (e.g. a comparison holds).
wait_prom() {
  for _ in $(seq 300); do
    [[ $(curl -fsS "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode "query=$1") == *'"value"'* ]] && return 0
    sleep 0.1
  done
  die "Prometheus never saw: $1"
}
# Polls the gateway's /metrics until it contains the text $1.
wait_metric() {
  for _ in $(seq 100); do
    [[ $(curl -fsS "http://127.0.0.1:$METRICS/metrics") == *"$1"* ]] && return 0
    sleep 0.1
  done
  die "gateway metrics never showed: $1"
}

# --- configuration: one $default stage, routes covering each status the dashboard splits on.
CONF=$TMP/conf
mkdir -p "$CONF"/{stages,routes,integrations,authorizers}
SECRET=dashboard-snapshot-secret-0123456789   # HS256 `oct` key, >= 32 bytes
read -r KEY TOKEN < <(SECRET=$SECRET python3 -c '
import base64, hashlib, hmac, json, os, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret = os.environ["SECRET"].encode()
head = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
claims = {"sub": "snapshot", "iss": "https://issuer.local", "aud": "dashboard", "exp": int(time.time()) + 3600}
signing = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
print(b64(secret), signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest()))')

echo '{"Threads": 1}' >"$CONF/gateway.json"
cat >"$CONF/authorizers/auth.json" <<EOF
{"AuthorizerType": "JWT", "IdentitySource": ["\$request.header.Authorization"],
 "JwtConfiguration": {"Issuer": "https://issuer.local", "Audience": ["dashboard"]},
 "Jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": "$KEY"}]}}
EOF
# An IdP that is down (JWKS on the dead port): its callers get 401 and each fetch attempt,
# at most one per JwksMinRefetchSeconds, counts in apigate_jwks_fetch_failures_total.
cat >"$CONF/authorizers/idp.json" <<EOF
{"AuthorizerType": "JWT", "IdentitySource": ["\$request.header.Authorization"],
 "JwtConfiguration": {"Issuer": "https://issuer.local", "Audience": ["dashboard"]},
 "JwksUri": "http://127.0.0.1:$DEAD/jwks.json", "JwksMinRefetchSeconds": 3}
EOF
# Writes routes/NAME.json and integrations/NAME.json: route (key, extra route fields), integration URI (+ extra fields).
route() {
  printf '{"RouteKey": "%s", "Target": "integrations/%s"%s}\n' "$2" "$1" "${3:+, $3}" >"$CONF/routes/$1.json"
  printf '{"IntegrationType": "HTTP_PROXY", "IntegrationUri": "%s", "PayloadFormatVersion": "1.0"%s}\n' \
    "$4" "${5:+, $5}" >"$CONF/integrations/$1.json"
}
route items  'ANY /items/{id}'  ''                                             "http://127.0.0.1:$ECHO/items/{id}"
route orders 'GET /orders/{id}' '"AuthorizationType": "JWT", "AuthorizerId": "auth"' "http://127.0.0.1:$ECHO/orders/{id}"
route partner 'GET /partner/{id}' '"AuthorizationType": "JWT", "AuthorizerId": "idp"' "http://127.0.0.1:$ECHO/partner/{id}"
route limited 'GET /limited'    ''                                             "http://127.0.0.1:$ECHO/limited"
route broken 'GET /broken'      ''                                             "http://127.0.0.1:$DEAD/broken"
route slow   'GET /slow'        ''                                             "http://127.0.0.1:$SLOW/slow" '"TimeoutInMillis": 250'
# Throttles GET /limited to $1 req/s (the traffic sends ~40-80 req/s there, so 429s happen).
stage() {
  printf '{"Name": "$default", "RouteSettings": {"GET /limited": {"ThrottlingRateLimit": %s, "ThrottlingBurstLimit": 10}}}\n' \
    "$1" >"$CONF/stages/default.json"
}
stage 20
"$BIN" check --conf "$CONF" >/dev/null || die "generated config is invalid: $("$BIN" check --conf "$CONF" 2>&1)"

cat >"$TMP/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: apigate
    static_configs: [{targets: ["127.0.0.1:$METRICS"]}]
EOF

# A backend taking 20-300 ms (the gateway times out at 250 ms -> 503): keeps requests in
# flight and gives the latency panels a slow route next to the sub-millisecond ones.
cat >"$TMP/slow.py" <<'EOF'
import http.server, random, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body are two writes; with Nagle on, the body waits for the gateway's delayed
    # ACK (40 ms), which the overhead panel would then show as the gateway's time.
    disable_nagle_algorithm = True
    def do_GET(self):
        time.sleep(random.uniform(0.02, 0.3))
        body = b'{"slow":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except ConnectionError:  # the gateway gave up at 250 ms and closed the connection
            self.close_connection = True
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
EOF

# --- start everything and wait for readiness
"$BIN" echo --listen "127.0.0.1:$ECHO" >"$TMP/echo.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$ECHO/" $!
python3 "$TMP/slow.py" "$SLOW" >"$TMP/slow.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$SLOW/" $!
"$BIN" serve --conf "$CONF" --listen "127.0.0.1:$GW" --metrics "127.0.0.1:$METRICS" >"$TMP/gateway.log" 2>&1 & PIDS+=($!)
GW_PID=$!
wait_http "http://127.0.0.1:$METRICS/metrics" $GW_PID
wait_http "http://127.0.0.1:$GW/items/ready" $GW_PID
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$PROM" --log.level=warn >"$TMP/prometheus.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$PROM/-/ready" $!
wait_prom 'up{job="apigate"} == 1'

# --- traffic. mix.lua: a weighted path mix, each connection pausing 5 ms between requests.
cat >"$TMP/mix.lua" <<EOF
local token = "Bearer $TOKEN"
local body = string.rep("x", 512)
local mix = {  -- {weight, method, path, headers, body}
  {45, "GET",  "/items/%d"}, {10, "POST", "/items/%d", {["Content-Type"] = "text/plain"}, body},
  {20, "GET",  "/orders/%d", {Authorization = token}}, {4, "GET", "/orders/%d"},
  {2,  "GET",  "/partner/%d", {Authorization = token}},
  {6,  "GET",  "/limited"}, {3, "GET", "/broken"}, {6, "GET", "/no/such/path/%d"},
}
local total = 0
for _, m in ipairs(mix) do total = total + m[1] end
function setup(thread) math.randomseed(os.time()) end
function request()
  local r = math.random(total)
  for _, m in ipairs(mix) do
    r = r - m[1]
    if r <= 0 then
      return wrk.format(m[2], string.format(m[3], math.random(1000)), m[4] or {}, m[5])
    end
  end
end
function delay() return 5 end
EOF

# Runs one phase: the mix on $1 connections and the slow route on $2, for PHASE_SECONDS.
phase() {
  wrk -t1 -c"$1" -d"${PHASE_SECONDS}s" -s "$TMP/mix.lua" "http://127.0.0.1:$GW" >"$TMP/wrk-mix.log" 2>&1 &
  local mix=$!
  wrk -t1 -c"$2" -d"${PHASE_SECONDS}s" "http://127.0.0.1:$GW/slow" >"$TMP/wrk-slow.log" 2>&1 &
  local slow=$!
  PHASE_PIDS=("$mix" "$slow")
  wait "$mix" "$slow"
  PHASE_PIDS=()
  echo "  mix: $(grep -m1 'requests in' "$TMP/wrk-mix.log"); slow: $(grep -m1 'requests in' "$TMP/wrk-slow.log")"
}

START=$(date +%s)
echo "traffic: 3 phases of ${PHASE_SECONDS}s on gateway 127.0.0.1:$GW (Prometheus at 127.0.0.1:$PROM)"
phase 4 4
# A good reload (GET /limited now allows 40 req/s instead of 20) ...
stage 40 && kill -HUP $GW_PID && wait_metric 'apigate_config_reloads_total{result="success"} 1'
phase 8 10
# ... and a broken one (a route pointing at a missing integration): the old config keeps serving.
echo '{"RouteKey": "GET /oops", "Target": "integrations/missing"}' >"$CONF/routes/oops.json"
kill -HUP $GW_PID && wait_metric 'apigate_config_reloads_total{result="failure"} 1'
rm "$CONF/routes/oops.json"
phase 3 2
END=$(date +%s)
# Wait for Prometheus to scrape past the end of the traffic, so the last points are real.
wait_prom "max(timestamp(up{job=\"apigate\"})) > $((END + 1))"

python3 "$ROOT/conf/grafana/render.py" --prometheus "http://127.0.0.1:$PROM" \
  --dashboard "$ROOT/conf/grafana/apigate-dashboard.json" \
  --start "$START" --end $((END + 2)) --step 2 --rate-interval 10s --out "$OUT" \
  --subtitle "3 x ${PHASE_SECONDS}s of mixed traffic (4/8/3 paced connections + 4/10/2 on a 20-300 ms backend); config reloads at the phase boundaries; scrape 1s"
echo "Expected all zero: rate-limit store errors (no Redis RateLimitStore configured) and access log"
echo "lines dropped (no AccessLogSettings), as this setup has neither."
