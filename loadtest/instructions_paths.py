#!/usr/bin/env python3
"""User-space instructions per request on the TLS, Lambda and aggregation paths, counted by
callgrind as `instructions.py` counts the plain HTTP proxy path (the figure a shared, noisy
machine reproduces; see loadtest/README.md "TLS, Lambda and aggregation paths").

Only the gateway runs under callgrind (one thread, warm: counters zeroed after a warm-up
load); backends are a one-worker nginx (JSON answers, and a fixed Invoke API answer for the
remote Lambda target) and real awslambdaric instances for the local Lambda target (children
of the gateway, not traced: their Python is not counted). Targets:

  http            the plain HTTP_PROXY route (the reference the others are read against)
  tls             the same route behind the HTTPS listener, keep-alive: per-request cost
  tls+handshake   the same, `Connection: close`: each request pays a full TLS handshake
  lambda-remote   AWS_PROXY (2.0) through `LambdaEndpoint` (nginx answering the Invoke API)
  lambda-remote-v1  the same with payload format 1.0
  lambda-local    AWS_PROXY (2.0) on one warm local awslambdaric instance
  aggregate       AGGREGATE of two HTTP_PROXY backends, concurrent, merged

    python3 loadtest/instructions_paths.py [--duration 8] [--only tls] [--bin target/release/apigate]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import compare_tls  # noqa: E402
from instructions import callgrind, instructions  # noqa: E402

# What the remote Lambda target's Invoke API answers (a 2.0 answer of the lambda bench's shape).
INVOKE_ANSWER = json.dumps({"statusCode": 200, "headers": {"content-type": "application/json"},
                            "body": json.dumps({"message": "hello", "q": "x=1"})})
HANDLER = '''
import json

def lambda_handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"message": "hello", "q": event.get("rawQueryString", "")})}
'''


def wrk(url, duration, connections, headers=()):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    if re.search(r"Non-2xx or 3xx responses|Socket errors: connect [1-9]|read [1-9]", out):
        sys.exit(f"wrk saw errors on {url}:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def measure(name, cmd, port, url, duration, connections, headers, workdir):
    out = os.path.join(workdir, "cg-" + re.sub(r"\W", "_", name))
    proc = subprocess.Popen(callgrind(cmd, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        compare.wait_port(port, proc, timeout=60)
        wrk(url, 3, connections, headers)  # warm: pools, sessions, instances, lazy statics
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True)
        reqs = wrk(url, duration, connections, headers)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True)
        time.sleep(0.5)  # the dump is written asynchronously by the profiled process
        return instructions(out), reqs
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def write(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)


def confs(d, backend, invoke, crt, key):
    """One configuration directory per target, all answering `GET /bench`."""
    http = {"IntegrationType": "HTTP_PROXY", "IntegrationUri": f"http://127.0.0.1:{backend}/bench",
            "IntegrationMethod": "ANY", "PayloadFormatVersion": "1.0"}
    route = {"RouteKey": "GET /bench", "Target": "integrations/i"}
    for name in ("http", "tls"):
        write(os.path.join(d, name, "integrations", "i.json"), http)
        write(os.path.join(d, name, "routes", "r.json"), route)
    write(os.path.join(d, "tls", "gateway.json"), {"Tls": {"CertFile": crt, "KeyFile": key}})
    lam = {"IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0",
           "IntegrationUri": "arn:aws:lambda:us-east-1:123456789012:function:bench"}
    write(os.path.join(d, "lambda-remote", "integrations", "i.json"), lam)
    write(os.path.join(d, "lambda-remote", "routes", "r.json"), route)
    write(os.path.join(d, "lambda-remote", "gateway.json"), {"LambdaEndpoint": f"http://127.0.0.1:{invoke}"})
    v1 = os.path.join(d, "lambda-remote-v1")
    write(os.path.join(v1, "integrations", "i.json"), dict(lam, PayloadFormatVersion="1.0"))
    write(os.path.join(v1, "routes", "r.json"), route)
    write(os.path.join(v1, "gateway.json"), {"LambdaEndpoint": f"http://127.0.0.1:{invoke}"})
    code = os.path.join(d, "code")
    os.makedirs(code, exist_ok=True)
    with open(os.path.join(code, "app.py"), "w") as f:
        f.write(HANDLER)
    write(os.path.join(d, "lambda-local", "functions", "bench.json"),
          {"CodeUri": code, "Handler": "app.lambda_handler", "Runtime": "python3.12", "Instances": 1})
    write(os.path.join(d, "lambda-local", "integrations", "i.json"), dict(lam, IntegrationUri="functions/bench"))
    write(os.path.join(d, "lambda-local", "routes", "r.json"), route)
    agg = os.path.join(d, "aggregate")
    for b in ("users", "orders"):
        write(os.path.join(agg, "integrations", f"{b}.json"),
              dict(http, IntegrationUri=f"http://127.0.0.1:{backend}/{b}"))
    write(os.path.join(agg, "integrations", "i.json"), {
        "IntegrationType": "AGGREGATE", "TimeoutInMillis": 5000,
        "Backends": [{"Integration": "integrations/users", "Group": "user"},
                     {"Integration": "integrations/orders", "Deny": ["internal"]}]})
    write(os.path.join(agg, "routes", "r.json"), route)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--only", help="measure just this target")
    ap.add_argument("--bin", default=compare.BIN,
                    help="the gateway binary (release: its symbol table names functions for callgrind_annotate)")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "valgrind", "callgrind_control", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install nginx-light wrk valgrind openssl)")
    d = tempfile.mkdtemp(prefix="apigate-instr-paths-")
    backend_proc = None
    try:
        ca, crt, key = compare_tls.certificates(d)
        backend = compare.free_port()
        ret = "default_type application/json; return 200"
        backend_proc = subprocess.Popen(["nginx", "-g", "daemon off;", "-c", compare_tls.nginx(d, "backend", f"""
  server {{ listen 127.0.0.1:{backend};
    location /bench {{ {ret} '{compare.BODY}'; }}
    location /users {{ {ret} '{{"id":42,"name":"Ada","roles":["admin","dev"]}}'; }}
    location /orders {{ {ret} '{{"orders":[{{"id":1,"total":9.5}},{{"id":2,"total":12}}],"internal":"x"}}'; }}
    location /2015-03-31/functions/bench/invocations {{ {ret} '{INVOKE_ANSWER.replace(chr(92), chr(92) * 2)}'; }}
  }}""")])
        compare.wait_port(backend, backend_proc)
        confs(d, backend, backend, crt, key)
        os.environ.setdefault("APIGATE_PYTHON", sys.executable)  # the one with awslambdaric
        targets = [
            ("http", "http", "http", []),
            ("tls", "tls", "https", []),
            ("tls+handshake", "tls", "https", ["Connection: close"]),
            ("lambda-remote", "lambda-remote", "http", []),
            ("lambda-remote-v1", "lambda-remote-v1", "http", []),
            ("lambda-local", "lambda-local", "http", []),
            ("aggregate", "aggregate", "http", []),
        ]
        results, raw = {}, {}
        for name, conf, scheme, headers in targets:
            if args.only and name != args.only:
                continue
            port = compare.free_port()
            cmd = [args.bin, "serve", "--conf", os.path.join(d, conf), "--listen", f"127.0.0.1:{port}",
                   "--threads", "1"]
            conns = 4 if name == "tls+handshake" else args.connections
            ir, reqs = measure(name, cmd, port, f"{scheme}://127.0.0.1:{port}/bench", args.duration, conns,
                               headers, d)
            results[name] = ir / reqs
            raw[name] = (ir, reqs, conns)
            print(f"{name:14} {ir / reqs:10,.0f} instructions/request  ({reqs} requests)", flush=True)
        if "tls" in raw and "tls+handshake" in raw:
            # The keep-alive run opened its connections inside the measured window: take
            # their handshakes out (each cost about one tls+handshake request).
            ir, reqs, conns = raw["tls"]
            hs = results["tls+handshake"]
            net = (ir - conns * hs) / (reqs - conns)
            print(f"\ntls keep-alive without its {conns} handshakes: {net:,.0f} instructions/request; "
                  f"one handshake: {hs - net:,.0f}")
        base = results.get("http")
        if base:
            print("\nabove the plain HTTP route: " + ", ".join(
                f"{n} {v - base:+,.0f}" for n, v in results.items() if n != "http"))
    finally:
        if backend_proc and backend_proc.poll() is None:
            backend_proc.terminate()
            backend_proc.wait(10)
        if os.environ.get("KEEP"):
            print(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
