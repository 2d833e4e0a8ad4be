#!/usr/bin/env python3
"""Gateway vs nginx (and HAProxy, Caddy) on one machine, in one run, alternating rounds.

Starts a one-worker nginx backend answering a 30-byte JSON, then drives the same load with
wrk through: nginx as a reverse proxy (one worker, keepalive upstream), the bare Pingora floor
(examples/pingora_floor.rs: apigate's runtime settings, a fixed peer, nothing else), apigate
plain, and apigate with a JWT authorizer + IP filter + header mapping on the route (one thread
each). When installed (`loadtest/compare.sh` tries Debian's packages), also HAProxy plain,
HAProxy doing the policy route's work (HS256 signature with `jwt_verify`, iss/aud/exp/scope
with `jwt_header_query`/`jwt_payload_query`, a `src` ACL, the two headers with `set-header`),
and Caddy's `reverse_proxy` (Caddy has no JWT module in Debian's build: plain only), one
thread each. Prints req/s, p50/p99 latency and proxy CPU per request (user + system), as
medians over the rounds and as ratios against nginx. The floor separates what Pingora costs
from what apigate adds. Loopback only; every wrk run is bounded by --duration.

    python3 loadtest/compare.py [--rounds 3] [--duration 10] [--connections 64]

`--floor NAME=PATH` (repeatable) runs nginx and those floor binaries only (the builds of
loadtest/pingora-patches/measure.sh), and adds their ratios to the first of them.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "apigate")
FLOOR = os.path.join(ROOT, "target", "release", "examples", "pingora_floor")
BODY = '{"ok":true,"msg":"hello, api"}'  # 30 bytes
assert len(BODY) == 30
SECRET = b"compare-script-secret-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"process for port {port} exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on {port}")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token():
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    claims = {"sub": "load", "iss": "https://issuer.local", "aud": "bench",
              "exp": int(time.time()) + 3600, "scope": "read"}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(SECRET, signing.encode(), hashlib.sha256).digest())


def cpu_seconds(pids):
    """(user, system) CPU seconds used so far by `pids`."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / tick, system / tick


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def nginx_conf(d, name, port, body=None, upstream=None):
    path = os.path.join(d, f"{name}.conf")
    if body is not None:
        loc = f"default_type application/json; return 200 '{body}';"
        up = ""
    else:
        up = f"upstream backend {{ server 127.0.0.1:{upstream}; keepalive 64; }}"
        loc = "proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    with open(path, "w") as f:
        f.write(f"""
worker_processes 1;
pid {d}/{name}.pid;
error_log {d}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {d}/{name}-body;
  proxy_temp_path {d}/{name}-proxy;
  fastcgi_temp_path {d}/{name}-fcgi;
  uwsgi_temp_path {d}/{name}-uwsgi;
  scgi_temp_path {d}/{name}-scgi;
  {up}
  server {{ listen 127.0.0.1:{port}; location / {{ {loc} }} }}
}}
""")
    return path


def haproxy_conf(d, name, port, backend, policies):
    """One thread, keep-alive both ways; with `policies`, the policy route's checks."""
    checks = ""
    if policies:
        secret = SECRET.decode()
        checks = f"""
  http-request deny status 403 unless {{ src 127.0.0.0/8 }}
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.scope) var(txn.bearer),jwt_payload_query('$.scope')
  http-request set-var(txn.now) date()
  http-request deny status 401 unless {{ var(txn.alg) -m str HS256 }}
  http-request deny status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{secret}") -m int 1 }}
  http-request deny status 401 unless {{ var(txn.iss) -m str https://issuer.local }}
  http-request deny status 401 unless {{ var(txn.aud) -m str bench }}
  http-request deny status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request deny status 403 unless {{ var(txn.scope) -m reg '(^| )read( |$)' }}
  http-request set-header X-User %[var(txn.bearer),jwt_payload_query('$.sub')]
  http-request set-header Api-Version v1"""
    path = os.path.join(d, f"{name}.cfg")
    with open(path, "w") as f:
        f.write(f"""
global
  nbthread 1
  maxconn 4096
  pidfile {d}/{name}.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:{port}{checks}
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:{backend}
""")
    return path


def caddy_conf(d, port, backend):
    path = os.path.join(d, "Caddyfile")
    with open(path, "w") as f:
        f.write(f"""{{
  admin off
  auto_https off
}}
http://127.0.0.1:{port} {{
  reverse_proxy 127.0.0.1:{backend}
}}
""")
    return path


def write_conf(d, backend, policies):
    os.makedirs(os.path.join(d, "routes"), exist_ok=True)
    os.makedirs(os.path.join(d, "integrations"), exist_ok=True)
    integ = {"IntegrationType": "HTTP_PROXY", "IntegrationUri": f"http://127.0.0.1:{backend}/bench",
             "IntegrationMethod": "ANY", "PayloadFormatVersion": "1.0"}
    route = {"RouteKey": "GET /bench", "Target": "integrations/i"}
    if policies:
        integ["RequestParameters"] = {"overwrite:header.X-User": "$context.authorizer.claims.sub",
                                      "overwrite:header.Api-Version": "v1"}
        route.update({"AuthorizationType": "JWT", "AuthorizerId": "auth", "AuthorizationScopes": ["read"],
                      "Policies": {"IpFilter": {"Action": "allow", "Addresses": ["127.0.0.0/8"]}}})
        os.makedirs(os.path.join(d, "authorizers"), exist_ok=True)
        with open(os.path.join(d, "authorizers", "auth.json"), "w") as f:
            json.dump({"AuthorizerType": "JWT", "IdentitySource": ["$request.header.Authorization"],
                       "JwtConfiguration": {"Issuer": "https://issuer.local", "Audience": ["bench"]},
                       "Jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)}]}}, f)
    with open(os.path.join(d, "integrations", "i.json"), "w") as f:
        json.dump(integ, f)
    with open(os.path.join(d, "routes", "r.json"), "w") as f:
        json.dump(route, f)


def wrk(port, duration, connections, headers, pin):
    cmd = pin + ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{port}/bench")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"wrk saw {non2xx.group(1)} error responses on port {port}:\n{out}")

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]
    return reqs, rps, pct(50), pct(99)


def add_usual_targets(targets, procs, d, backend, pin_proxy):
    """The floor, apigate plain and with policies, and HAProxy and Caddy when installed."""
    floor_port = free_port()
    floor = subprocess.Popen(pin_proxy + [FLOOR, f"127.0.0.1:{floor_port}", f"127.0.0.1:{backend}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(floor)
    wait_port(floor_port, floor)
    targets.append(("pingora floor", floor_port, [floor.pid], []))
    for name, policies in (("apigate", False), ("apigate+policies", True)):
        cd = os.path.join(d, name.replace("+", "-"))
        write_conf(cd, backend, policies)
        port = free_port()
        p = subprocess.Popen(pin_proxy + [BIN, "serve", "--conf", cd, "--listen", f"127.0.0.1:{port}", "--threads", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_port(port, p)
        headers = [f"Authorization: Bearer {token()}"] if policies else []
        targets.append((name, port, [p.pid], headers))

    if shutil.which("haproxy"):
        for name, policies in (("haproxy", False), ("haproxy+policies", True)):
            port = free_port()
            conf = haproxy_conf(d, name.replace("+", "-"), port, backend, policies)
            p = subprocess.Popen(pin_proxy + ["haproxy", "-db", "-f", conf],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(port, p)
            headers = [f"Authorization: Bearer {token()}"] if policies else []
            targets.append((name, port, [p.pid], headers))
    else:
        print("haproxy is not installed: skipped (apt-get install haproxy)", flush=True)
    if shutil.which("caddy"):
        port = free_port()
        env = dict(os.environ, GOMAXPROCS="1", XDG_DATA_HOME=d, XDG_CONFIG_HOME=d)
        p = subprocess.Popen(pin_proxy + ["caddy", "run", "--adapter", "caddyfile", "--config",
                                          caddy_conf(d, port, backend)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        procs.append(p)
        wait_port(port, p)
        targets.append(("caddy", port, [p.pid], []))
    else:
        print("caddy is not installed: skipped (apt-get install caddy)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--floor", action="append", default=[], metavar="NAME=PATH",
                    help="nginx and these floor binaries only; ratios also to the first one")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run loadtest/compare.sh (it installs nginx-light and wrk)")
    if not args.floor and not (os.path.exists(BIN) and os.path.exists(FLOOR)):
        sys.exit("build first: cargo build --release && cargo build --release --example pingora_floor")

    # Two cores: the proxy under test gets CPU 1, the backend and wrk share CPU 0.
    pin_proxy = ["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() >= 2 else []
    pin_other = ["taskset", "-c", "0"] if pin_proxy else []

    d = tempfile.mkdtemp(prefix="apigate-compare-")
    procs = []
    try:
        backend = free_port()
        procs.append(subprocess.Popen(pin_other + ["nginx", "-g", "daemon off;", "-c", nginx_conf(d, "backend", backend, body=BODY)]))
        wait_port(backend, procs[-1])
        nginx_port = free_port()
        nginx = subprocess.Popen(pin_proxy + ["nginx", "-g", "daemon off;", "-c", nginx_conf(d, "proxy", nginx_port, upstream=backend)])
        procs.append(nginx)
        wait_port(nginx_port, nginx)

        targets = [("nginx proxy", nginx_port, children(nginx.pid) or [nginx.pid], [])]
        for spec in args.floor:
            fname, _, path = spec.partition("=")
            port = free_port()
            p = subprocess.Popen(pin_proxy + [path, f"127.0.0.1:{port}", f"127.0.0.1:{backend}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(port, p)
            targets.append((fname, port, [p.pid], []))
        if not args.floor:
            add_usual_targets(targets, procs, d, backend, pin_proxy)

        # Warm up every path (pools, caches), then alternate rounds.
        for _, port, _, headers in targets:
            wrk(port, 2, args.connections, headers, pin_other)
        results = {t[0]: [] for t in targets}
        for r in range(args.rounds):
            for name, port, pids, headers in targets:
                u0, s0 = cpu_seconds(pids)
                reqs, rps, p50, p99 = wrk(port, args.duration, args.connections, headers, pin_other)
                u1, s1 = cpu_seconds(pids)
                user_us, sys_us = (u1 - u0) / reqs * 1e6, (s1 - s0) / reqs * 1e6
                results[name].append((rps, p50, p99, user_us + sys_us, user_us, sys_us))
                print(f"round {r + 1} {name:18} {rps:10.0f} req/s  p50 {p50:7.0f} us  p99 {p99:7.0f} us  "
                      f"cpu {user_us + sys_us:5.1f} us/req (user {user_us:4.1f} sys {sys_us:4.1f})", flush=True)

        med = {n: [statistics.median(x[i] for x in v) for i in range(6)] for n, v in results.items()}
        # Ratios are taken within each round (its runs are back to back, so they share the
        # machine's mood), then the median over rounds: steadier than a ratio of medians.
        nginx = results["nginx proxy"]
        ratio = {n: [statistics.median(v[r][i] / nginx[r][i] for r in range(len(v))) for i in range(4)]
                 for n, v in results.items()}
        print(f"\nmedians of {args.rounds} rounds, wrk -t1 -c{args.connections} -d{args.duration}s, one worker each:")
        print(f"{'':18} {'req/s':>10} {'p50 us':>8} {'p99 us':>8} {'cpu us/req':>11} {'user':>6} {'sys':>6} | "
              f"{'req/s':>6} {'p50':>6} {'p99':>6} {'cpu/req':>7}  (ratio to nginx, median of per-round ratios)")
        for n, (rps, p50, p99, cpu, user, system) in med.items():
            r = ratio[n]
            print(f"{n:18} {rps:10.0f} {p50:8.0f} {p99:8.0f} {cpu:11.1f} {user:6.1f} {system:6.1f} | "
                  f"{r[0]:6.2f} {r[1]:6.2f} {r[2]:6.2f} {r[3]:7.2f}")
        if args.floor:
            first = targets[1][0]
            ref = results[first]
            print(f"\nratio to {first} (median of per-round ratios): req/s, cpu us/req")
            for n, v in results.items():
                rr = [statistics.median(v[r][i] / ref[r][i] for r in range(len(v))) for i in (0, 3)]
                print(f"{n:18} {rr[0]:6.3f} {rr[1]:7.3f}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
