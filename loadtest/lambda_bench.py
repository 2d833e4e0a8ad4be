#!/usr/bin/env python3
"""Lambda routes under load, on one machine, in one run.

The same handler logic (a small JSON answer) served three ways: by a plain Python HTTP
server (one process: the floor, no Lambda machinery at all), and through apigate's AWS_PROXY
route with 1, 2 and 4 warm awslambdaric instances. wrk drives each for --duration seconds
with --connections; prints req/s, p50/p99, and the CPU each request cost apigate and the
function processes (what bounds throughput). Then the cold start: the time of the first
request after the gateway starts (median of --cold runs). Loopback only; every run bounded.

    python3 loadtest/lambda_bench.py [--duration 10] [--connections 16] [--cold 5]
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("APIGATE_BIN", os.path.join(ROOT, "target", "release", "apigate"))

HANDLER = '''
import json

def answer(query):
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": "hello", "q": query})}

def lambda_handler(event, context):
    return answer(event.get("rawQueryString", ""))
'''

FLOOR = '''
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
sys.path.insert(0, sys.argv[2])
from app import answer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle: otherwise delayed ACKs cap it at ~25 req/s.
    wbufsize = 65536
    disable_nagle_algorithm = True
    def do_GET(self):
        a = answer(self.path.partition("?")[2])
        body = a["body"].encode()
        self.send_response(a["statusCode"])
        for k, v in a["headers"].items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"nothing listening on {port}")


def wrk(url, duration, connections):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True, text=True, timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct(50), pct(99), int(non2xx.group(1)) if non2xx else 0


def cpu_seconds(pid):
    """User + system CPU of one process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    """Every child of every thread (instances are started from the runtime's workers)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def conf_dir(tmp, instances):
    d = os.path.join(tmp, f"conf{instances}")
    for sub in ["functions", "integrations", "routes"]:
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "functions", "bench.json"), "w") as f:
        json.dump({"CodeUri": os.path.join(tmp, "code"), "Handler": "app.lambda_handler",
                   "Runtime": "python3.12", "Instances": instances}, f)
    with open(os.path.join(d, "integrations", "b.json"), "w") as f:
        json.dump({"IntegrationType": "AWS_PROXY", "IntegrationUri": "functions/bench",
                   "PayloadFormatVersion": "2.0"}, f)
    with open(os.path.join(d, "routes", "b.json"), "w") as f:
        json.dump({"RouteKey": "GET /bench", "Target": "integrations/b"}, f)
    return d


def start_gateway(conf):
    port, mport = free_port(), free_port()
    p = subprocess.Popen([BIN, "serve", "--conf", conf, "--listen", f"127.0.0.1:{port}",
                          "--metrics", f"127.0.0.1:{mport}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--cold", type=int, default=5)
    a = ap.parse_args()
    rows = []
    cpu = []
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "code"))
        with open(os.path.join(tmp, "code", "app.py"), "w") as f:
            f.write(HANDLER)
        floor_py = os.path.join(tmp, "floor.py")
        with open(floor_py, "w") as f:
            f.write(FLOOR)
        port = free_port()
        floor = subprocess.Popen([sys.executable, floor_py, str(port), os.path.join(tmp, "code")])
        try:
            wait_port(port)
            rows.append(("plain Python HTTP server (1 process)",
                         wrk(f"http://127.0.0.1:{port}/bench?x=1", a.duration, a.connections)))
        finally:
            stop(floor)
        for n in [1, 2, 4]:
            gw, port = start_gateway(conf_dir(tmp, n))
            try:
                url = f"http://127.0.0.1:{port}/bench?x=1"
                # Warm every instance first: the run measures warm invocations.
                wrk(url, 2, max(n, 2))
                kids = children(gw.pid)
                g0, k0 = cpu_seconds(gw.pid), sum(cpu_seconds(k) for k in kids)
                result = wrk(url, a.duration, a.connections)
                g1, k1 = cpu_seconds(gw.pid), sum(cpu_seconds(k) for k in kids)
                done = result[0] * a.duration
                cpu.append((n, (g1 - g0) / done * 1e6, (k1 - k0) / done * 1e6))
                rows.append((f"apigate AWS_PROXY, {n} warm instance(s)", result))
            finally:
                stop(gw)
        colds = []
        for _ in range(a.cold):
            gw, port = start_gateway(conf_dir(tmp, 1))
            try:
                t = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench", timeout=30) as r:
                    r.read()
                colds.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench", timeout=30) as r:
                    r.read()
                warm = (time.perf_counter() - t) * 1000
            finally:
                stop(gw)
    print(f"{'setup':45} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, (rps, p50, p99, bad) in rows:
        print(f"{name:45} {rps:9.0f} {p50:8.2f} {p99:8.2f} {bad:8d}")
    for n, g, f in cpu:
        print(f"{n} instance(s): CPU per request: apigate {g:.0f} us, function processes "
              f"(awslambdaric + handler) {f:.0f} us")
    print(f"cold start (first request, python3 -m awslambdaric): median {statistics.median(colds):.0f} ms "
          f"over {len(colds)} starts (then warm: {warm:.1f} ms)")


if __name__ == "__main__":
    main()
