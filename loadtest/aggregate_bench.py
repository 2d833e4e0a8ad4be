#!/usr/bin/env python3
"""An AGGREGATE route under load, against calling its slowest backend alone.

Two loopback JSON backends (asyncio, keep-alive): a fast one and one that answers after
--delay ms. wrk drives, for --duration seconds with --connections each: the slow backend
directly, a plain HTTP_PROXY route to it through apigate, and an AGGREGATE route calling
both backends concurrently. Prints req/s, p50/p99, and the aggregate's ratios to the plain
route: with concurrent calls the aggregate should cost about the slowest backend, not the
sum. Loopback only; every run bounded in time.

    python3 loadtest/aggregate_bench.py [--duration 10] [--connections 16] [--delay 20]
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("APIGATE_BIN", os.path.join(ROOT, "target", "release", "apigate"))

BACKEND = r'''
import asyncio, json, sys

PORT, DELAY, NAME = int(sys.argv[1]), float(sys.argv[2]) / 1000, sys.argv[3]
BODY = json.dumps({NAME: {"id": 42, "items": list(range(20))}}).encode()
HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(BODY)).encode() + b"\r\n\r\n")

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            if DELAY:
                await asyncio.sleep(DELAY)
            writer.write(HEAD + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, backlog=1024)
    async with server:
        await server.serve_forever()

asyncio.run(main())
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


def write(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def conf_dir(tmp, fast, slow):
    d = os.path.join(tmp, "conf")
    http = lambda port: {"IntegrationType": "HTTP_PROXY",  # noqa: E731
                         "IntegrationUri": f"http://127.0.0.1:{port}/x", "TimeoutInMillis": 5000}
    write(os.path.join(d, "integrations", "fast.json"), http(fast))
    write(os.path.join(d, "integrations", "slow.json"), http(slow))
    write(os.path.join(d, "integrations", "agg.json"), {
        "IntegrationType": "AGGREGATE", "TimeoutInMillis": 5000,
        "Backends": [{"Integration": "integrations/fast"}, {"Integration": "integrations/slow"}]})
    write(os.path.join(d, "routes", "slow.json"), {"RouteKey": "GET /slow", "Target": "integrations/slow"})
    write(os.path.join(d, "routes", "agg.json"), {"RouteKey": "GET /agg", "Target": "integrations/agg"})
    return d


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
    ap.add_argument("--delay", type=float, default=20.0, help="the slow backend's delay, ms")
    a = ap.parse_args()
    procs = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "backend.py")
        with open(script, "w") as f:
            f.write(BACKEND)
        fast, slow, port, mport = free_port(), free_port(), free_port(), free_port()
        try:
            for p, delay, name in [(fast, 0, "fast"), (slow, a.delay, "slow")]:
                procs.append(subprocess.Popen([sys.executable, script, str(p), str(delay), name]))
                wait_port(p)
            procs.append(subprocess.Popen(
                [BIN, "serve", "--conf", conf_dir(tmp, fast, slow), "--listen", f"127.0.0.1:{port}",
                 "--metrics", f"127.0.0.1:{mport}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(port)
            for name, url in [
                (f"slow backend alone, direct ({a.delay:g} ms)", f"http://127.0.0.1:{slow}/x"),
                ("slow backend alone, via apigate HTTP_PROXY", f"http://127.0.0.1:{port}/slow"),
                ("AGGREGATE fast + slow (concurrent)", f"http://127.0.0.1:{port}/agg"),
            ]:
                wrk(url, 1, a.connections)  # warm the pools
                rows.append((name, wrk(url, a.duration, a.connections)))
        finally:
            for p in reversed(procs):
                stop(p)
    print(f"{'setup':45} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, (rps, p50, p99, bad) in rows:
        print(f"{name:45} {rps:9.0f} {p50:8.2f} {p99:8.2f} {bad:8d}")
    (_, (rps_s, _, p99_s, _)), (_, (rps_a, _, p99_a, _)) = rows[1], rows[2]
    print(f"aggregate / slowest alone via apigate: req/s x{rps_a / rps_s:.2f}, p99 x{p99_a / p99_s:.2f}")


if __name__ == "__main__":
    main()
