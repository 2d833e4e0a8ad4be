#!/usr/bin/env python3
"""TLS: apigate vs nginx on one machine, in one run, alternating rounds, one worker each.

Three pairs, each driven with keep-alive clients (so handshakes are amortised as in a load
test) against a one-worker nginx backend answering a 30-byte JSON:

  tls-listener   client --https--> proxy --http-->  backend   (wrk, HTTP/1.1)
  https-upstream client --http-->  proxy --https--> backend   (wrk; both proxies verify the
                                                              backend's certificate, pooled)
  h2-listener    client --h2/TLS-> proxy --http-->  backend   (h2load, if installed)

Prints req/s and proxy CPU per request (user + system) per round, then the medians and the
ratio apigate/nginx (median of the per-round ratios). Loopback only; every run is bounded.

    python3 loadtest/compare_tls.py [--rounds 3] [--duration 8] [--connections 64]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import BIN, BODY, children, cpu_seconds, free_port, wait_port  # noqa: E402

NGINX_HEAD = """
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
"""


def nginx(d, name, server, upstream=""):
    path = os.path.join(d, f"{name}.conf")
    with open(path, "w") as f:
        f.write(NGINX_HEAD.format(d=d, name=name) + upstream + server + "\n}\n")
    return path


def certificates(d):
    """A CA and a certificate it signs for localhost/127.0.0.1 (openssl CLI)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca, ca_key, crt, key, csr, ext = (os.path.join(d, n) for n in
                                      ("ca.pem", "ca.key", "srv.pem", "srv.key", "srv.csr", "ext.cnf"))
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
        "-out", ca, "-days", "2", "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
        "-extfile", ext)
    return ca, crt, key


def apigate_conf(d, name, uri, gateway):
    cd = os.path.join(d, name)
    os.makedirs(os.path.join(cd, "routes"))
    os.makedirs(os.path.join(cd, "integrations"))
    with open(os.path.join(cd, "gateway.json"), "w") as f:
        json.dump(gateway, f)
    with open(os.path.join(cd, "integrations", "i.json"), "w") as f:
        json.dump({"IntegrationType": "HTTP_PROXY", "IntegrationUri": uri, "IntegrationMethod": "ANY",
                   "PayloadFormatVersion": "1.0"}, f)
    with open(os.path.join(cd, "routes", "r.json"), "w") as f:
        json.dump({"RouteKey": "GET /bench", "Target": "integrations/i"}, f)
    return cd


def wrk(url, duration, connections, pin):
    cmd = pin + ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if non2xx or errors:
        sys.exit(f"wrk saw errors on {url}:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1)), float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def h2load(url, duration, connections, pin):
    cmd = pin + ["h2load", "-t1", f"-c{connections}", "-m10", f"-D{duration}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    if not m or int(m.group(3)) or not re.search(r"status codes: (\d+) 2xx", out):
        sys.exit(f"h2load failed on {url}:\n{out}")
    if "h2" not in out.split("Application protocol:")[-1][:10]:
        sys.exit(f"h2load did not negotiate h2 on {url}:\n{out}")
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    return int(m.group(2)), rps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run loadtest/compare_tls.sh (it installs what it needs)")
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    has_h2load = shutil.which("h2load") is not None
    pin_proxy = ["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() >= 2 else []
    pin_other = ["taskset", "-c", "0"] if pin_proxy else []

    d = tempfile.mkdtemp(prefix="apigate-compare-tls-")
    procs = []

    def start(cmd, port, pin):
        p = subprocess.Popen(pin + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_port(port, p)
        return p

    try:
        ca, crt, key = certificates(d)
        ret = f"location / {{ default_type application/json; return 200 '{BODY}'; }}"
        backend, tls_backend = free_port(), free_port()
        start(["nginx", "-g", "daemon off;", "-c", nginx(d, "backend", f"""
  server {{ listen 127.0.0.1:{backend}; {ret} }}
  server {{ listen 127.0.0.1:{tls_backend} ssl; ssl_certificate {crt}; ssl_certificate_key {key};
           ssl_session_cache shared:B:1m; {ret} }}""")], backend, pin_other)

        # (pair, proxy name, url, pids, load tool)
        targets = []
        ng_tls, ng_up = free_port(), free_port()
        ngx = start(["nginx", "-g", "daemon off;", "-c", nginx(d, "proxy", f"""
  server {{ listen 127.0.0.1:{ng_tls} ssl http2; ssl_certificate {crt}; ssl_certificate_key {key};
           location / {{ proxy_pass http://plain; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{ng_up};
           location / {{ proxy_pass https://tls; proxy_http_version 1.1; proxy_set_header Connection "";
                        proxy_ssl_server_name on; proxy_ssl_name localhost; proxy_ssl_verify on;
                        proxy_ssl_trusted_certificate {ca}; proxy_ssl_session_reuse on; }} }}""",
            upstream=f"""
  upstream plain {{ server 127.0.0.1:{backend}; keepalive 64; }}
  upstream tls {{ server 127.0.0.1:{tls_backend}; keepalive 64; }}""")], ng_tls, pin_proxy)
        wait_port(ng_up, ngx)
        ngx_pids = children(ngx.pid) or [ngx.pid]

        ag_tls, ag_up = free_port(), free_port()
        tls_conf = apigate_conf(d, "tls", f"http://127.0.0.1:{backend}/bench",
                                {"Tls": {"CertFile": crt, "KeyFile": key}})
        up_conf = apigate_conf(d, "up", f"https://localhost:{tls_backend}/bench", {"UpstreamCaFile": ca})
        ag1 = start([BIN, "serve", "--conf", tls_conf, "--listen", f"127.0.0.1:{ag_tls}", "--threads", "1"],
                    ag_tls, pin_proxy)
        ag2 = start([BIN, "serve", "--conf", up_conf, "--listen", f"127.0.0.1:{ag_up}", "--threads", "1"],
                    ag_up, pin_proxy)

        for name, port, pids in (("nginx", ng_tls, ngx_pids), ("apigate", ag_tls, [ag1.pid])):
            targets.append(("tls-listener", name, f"https://127.0.0.1:{port}/bench", pids, wrk))
        for name, port, pids in (("nginx", ng_up, ngx_pids), ("apigate", ag_up, [ag2.pid])):
            targets.append(("https-upstream", name, f"http://127.0.0.1:{port}/bench", pids, wrk))
        if has_h2load:
            for name, port, pids in (("nginx", ng_tls, ngx_pids), ("apigate", ag_tls, [ag1.pid])):
                targets.append(("h2-listener", name, f"https://127.0.0.1:{port}/bench", pids, h2load))
        else:
            print("h2load not installed (Debian nghttp2-client): skipping the HTTP/2 pair")

        for _, _, url, _, tool in targets:
            tool(url, 2, args.connections, pin_other)  # warm-up: pools, sessions
        results = {(t[0], t[1]): [] for t in targets}
        for r in range(args.rounds):
            for pair, name, url, pids, tool in targets:
                u0, s0 = cpu_seconds(pids)
                reqs, rps = tool(url, args.duration, args.connections, pin_other)
                u1, s1 = cpu_seconds(pids)
                cpu = ((u1 - u0) + (s1 - s0)) / reqs * 1e6
                results[(pair, name)].append((rps, cpu))
                print(f"round {r + 1} {pair:15} {name:8} {rps:10.0f} req/s  cpu {cpu:5.1f} us/req", flush=True)

        print(f"\nmedians of {args.rounds} rounds, -c{args.connections} -d{args.duration}s keep-alive, one worker each:")
        print(f"{'pair':15} {'nginx req/s':>12} {'apigate req/s':>14} {'nginx cpu':>10} {'apigate cpu':>12}"
              f" | {'req/s ratio':>11} {'cpu/req ratio':>13}")
        for pair in dict.fromkeys(t[0] for t in targets):
            n, a = results[(pair, "nginx")], results[(pair, "apigate")]
            rr = statistics.median(a[i][0] / n[i][0] for i in range(len(n)))
            cr = statistics.median(a[i][1] / n[i][1] for i in range(len(n)))
            print(f"{pair:15} {statistics.median(x[0] for x in n):12.0f} {statistics.median(x[0] for x in a):14.0f}"
                  f" {statistics.median(x[1] for x in n):10.1f} {statistics.median(x[1] for x in a):12.1f}"
                  f" | {rr:11.2f} {cr:13.2f}")
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
