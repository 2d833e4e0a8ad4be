#!/usr/bin/env python3
"""Gateway memory (RSS) under many idle or slow client connections, loopback only.

    python3 loadtest/conn_rss.py --bin target/release/apigate [--bin /work/wt-base/target/release/apigate]

For each binary, on a fresh gateway (a configuration with one route to a closed port):

1. idle:  CONNS connections each get an answer (a 404) and stay open, idle;
2. heads: HEADS connections each send HEAD_BYTES of request head without its end and stay
          open (what Pingora alone buffers, up to 1 MiB per connection);

and prints the gateway's RSS before, with the connections open, and how many of them the
gateway had closed by itself. Counts and times are bounded (each phase at most PHASE_SECS);
RLIMIT_NOFILE is raised to the hard limit so the connections fit.
"""

import argparse
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, conf):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--conf", conf, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{binary} exited with {proc.returncode}")
            time.sleep(0.02)
    proc.kill()
    sys.exit(f"{binary} never listened on {port}")


def closed_count(socks):
    """How many of `socks` the gateway has closed (EOF or reset), without blocking."""
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    closed += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def idle_phase(port, n, phase_secs):
    """`n` connections, each answered once, then held idle."""
    socks = []
    sel = selectors.DefaultSelector()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: rss.test\r\n\r\n")
        socks.append(s)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    answered = set()
    deadline = time.time() + phase_secs
    while len(answered) < n and time.time() < deadline:
        for key, _ in sel.select(timeout=0.5):
            try:
                if key.fileobj.recv(65536):
                    answered.add(key.fileobj)
                    sel.unregister(key.fileobj)
            except OSError:
                sel.unregister(key.fileobj)
    return socks, len(answered)


def heads_phase(port, n, head_bytes, phase_secs):
    """`n` connections, each sending `head_bytes` of an unfinished head, then held."""
    # 8 KiB header lines: Pingora refuses more than 256 headers, not long ones.
    chunk = b"X-Fill: " + b"h" * 8182 + b"\r\n"
    start_line = b"GET /nope HTTP/1.1\r\nHost: rss.test\r\n"
    socks, left = [], {}
    sel = selectors.DefaultSelector()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
        left[s] = head_bytes
        sel.register(s, selectors.EVENT_WRITE)
    pending = {s: start_line for s in socks}
    deadline = time.time() + phase_secs
    while sel.get_map() and time.time() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if not pending[s]:
                pending[s] = chunk[: left[s]]
            try:
                sent = s.send(pending[s])
                pending[s] = pending[s][sent:]
                left[s] -= sent
                if left[s] <= 0:
                    sel.unregister(s)
            except OSError:
                # Refused by the gateway (answered and closed): this connection is done.
                sel.unregister(s)
    return socks, sum(1 for v in left.values() if v <= 0)


def measure(binary, args):
    conf = tempfile.mkdtemp(prefix="apigate-rss-")
    try:
        os.makedirs(f"{conf}/integrations")
        os.makedirs(f"{conf}/routes")
        with open(f"{conf}/integrations/i.json", "w") as f:
            f.write('{"IntegrationType":"HTTP_PROXY","IntegrationUri":"http://127.0.0.1:9",'
                    '"IntegrationMethod":"ANY","PayloadFormatVersion":"1.0"}')
        with open(f"{conf}/routes/r.json", "w") as f:
            f.write('{"RouteKey":"GET /only","Target":"integrations/i"}')
        # Each phase on a fresh gateway, so that one's memory does not hide the other's.
        proc, port = start(binary, conf)
        try:
            base = rss_kib(proc.pid)
            socks, answered = idle_phase(port, args.conns, args.phase_secs)
            time.sleep(0.5)
            idle = rss_kib(proc.pid)
            idle_closed = closed_count(socks)
            for s in socks:
                s.close()
        finally:
            proc.kill()
            proc.wait()
        proc, port = start(binary, conf)
        try:
            socks, sent_all = heads_phase(port, args.heads, args.head_bytes, args.phase_secs)
            time.sleep(0.5)
            heads = rss_kib(proc.pid)
            heads_closed = closed_count(socks)
            for s in socks:
                s.close()
        finally:
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(conf, ignore_errors=True)
    mib = lambda k: f"{k / 1024:.1f} MiB"
    print(f"{binary}")
    print(f"  at start:                                  {mib(base)}")
    print(f"  {args.conns} idle connections ({answered} answered): {mib(idle)}"
          f"  (closed by the gateway: {idle_closed})")
    print(f"  {args.heads} unfinished {args.head_bytes}-byte heads "
          f"({sent_all} sent whole): {mib(heads)}  (closed by the gateway: {heads_closed})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", action="append", required=True)
    p.add_argument("--conns", type=int, default=3000)
    p.add_argument("--heads", type=int, default=600)
    p.add_argument("--head-bytes", type=int, default=1_000_000)
    p.add_argument("--phase-secs", type=float, default=40)
    args = p.parse_args()
    assert args.conns <= 20000 and args.heads <= 5000, "bounded counts"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * max(args.conns, args.heads) + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    for binary in args.bin:
        measure(binary, args)


if __name__ == "__main__":
    main()
