#!/usr/bin/env python3
"""User-space instructions per request, counted by callgrind: the one proxy cost figure that a
shared, noisy machine reproduces to within a percent (wall-clock and CPU time move by tens of
percent from run to run here).

Runs each proxy under `valgrind --tool=callgrind` in front of a one-worker nginx backend (the
same set-up as compare.py): nginx as a reverse proxy, the bare Pingora floor, apigate plain and
apigate with a JWT authorizer + IP filter + header mapping. For each: warm up, zero the
counters, drive `--requests`-ish load with wrk for `--duration` seconds, dump, and divide the
instructions of the process by the requests wrk completed. Kernel time (syscalls, loopback TCP)
is not counted: it is about the same for all of them (see the README). "pingora floor+token" is
the floor sent the policy route's request (its ~250-byte `Authorization` header): what Pingora
itself spends on that header, so that apigate's own share of the policy route is the
difference to it.

    python3 loadtest/instructions.py [--duration 8] [--only apigate+policies]

`--floor NAME=PATH` (repeatable) measures those floor binaries instead (the nginx proxy and the
floor builds of loadtest/pingora-patches/measure.sh, each against a patched Pingora).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (same directory: backend, configs, token, wrk)


def callgrind(cmd, out):
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
            "--collect-jumps=no", "--separate-threads=no"] + cmd


def instructions(out_prefix):
    """Sum of the instruction counts in the dumps callgrind_control -d wrote after the zeroing."""
    total = 0
    for path in glob.glob(out_prefix + ".*"):
        with open(path) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total += int(line.split()[1])
                    break
    return total


def measure(name, cmd, port, headers, duration, workdir):
    out = os.path.join(workdir, name.replace(" ", "_").replace("+", "_"))
    proc = subprocess.Popen(callgrind(cmd, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        compare.wait_port(port, proc, timeout=60)
        compare.wrk(port, 3, 16, headers, [])  # warm: pools, caches, lazy statics
        pids = [proc.pid] + compare.children(proc.pid)
        for pid in pids:
            subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True)
        reqs, _, _, _ = compare.wrk(port, duration, 16, headers, [])
        for pid in pids:
            subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True)
        time.sleep(0.5)  # the dump is written asynchronously by the profiled process
        return instructions(out), reqs
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--only", help="measure just this target")
    ap.add_argument("--floor", action="append", default=[], metavar="NAME=PATH",
                    help="measure this floor binary (with the nginx proxy) instead of the usual targets")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install nginx-light wrk valgrind)")
    d = tempfile.mkdtemp(prefix="apigate-instr-")
    backend_proc = None
    try:
        backend = compare.free_port()
        backend_proc = subprocess.Popen(["nginx", "-g", "daemon off;", "-c",
                                         compare.nginx_conf(d, "backend", backend, body=compare.BODY)])
        compare.wait_port(backend, backend_proc)
        nginx_port, floor_port, floor2_port, plain_port, pol_port = (compare.free_port() for _ in range(5))
        # One process, no master: what callgrind sees is the worker that proxies.
        proxy_conf = compare.nginx_conf(d, "proxy", nginx_port, upstream=backend)
        with open(proxy_conf) as f:
            text = f.read()
        with open(proxy_conf, "w") as f:
            f.write("master_process off;\n" + text)
        for name, policies in (("plain", False), ("policies", True)):
            compare.write_conf(os.path.join(d, name), backend, policies)
        token = [f"Authorization: Bearer {compare.token()}"]
        serve = lambda conf, port: [compare.BIN, "serve", "--conf", os.path.join(d, conf),
                                    "--listen", f"127.0.0.1:{port}", "--threads", "1"]
        targets = [
            ("nginx proxy", ["nginx", "-g", "daemon off;", "-c", proxy_conf], nginx_port, []),
            ("pingora floor", [compare.FLOOR, f"127.0.0.1:{floor_port}", f"127.0.0.1:{backend}"], floor_port, []),
            ("pingora floor+token", [compare.FLOOR, f"127.0.0.1:{floor2_port}", f"127.0.0.1:{backend}"],
             floor2_port, token),
            ("apigate", serve("plain", plain_port), plain_port, []),
            ("apigate+policies", serve("policies", pol_port), pol_port, token),
        ]
        if args.floor:
            targets = targets[:1]
            for spec in args.floor:
                fname, _, path = spec.partition("=")
                port = compare.free_port()
                targets.append((fname, [path, f"127.0.0.1:{port}", f"127.0.0.1:{backend}"], port, []))
        results = {}
        for name, cmd, port, headers in targets:
            if args.only and name != args.only:
                continue
            ir, reqs = measure(name, cmd, port, headers, args.duration, d)
            results[name] = ir / reqs
            print(f"{name:18} {ir / reqs:10,.0f} instructions/request  ({reqs} requests)", flush=True)
        base = results.get("nginx proxy")
        if base:
            print("\nratio to nginx: " + ", ".join(f"{n} {v / base:.2f}" for n, v in results.items()))
    finally:
        if backend_proc and backend_proc.poll() is None:
            backend_proc.terminate()
            backend_proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
