"""The console at scale (run by scripts/console-bench): a release server on a
fresh MariaDB database, filled with --tasks tasks through the batch API
(due in a day, so nothing is delivered), plus a few with attempts; then
each page is fetched --samples times with a signed-in session and the
p50/p95 of its full answer time are printed."""

import argparse
import concurrent.futures
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

TOKEN = "bench-" + secrets.token_hex(8)
APPS = [f"app{n}" for n in range(10)]
HOSTS = [f"svc{n}.example.com" for n in range(20)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=120) as answer:
        return answer.status, answer.read()


def fill(base, total, batch=1000, workers=4):
    def one(start):
        tasks = [
            {
                "url": f"https://{HOSTS[n % len(HOSTS)]}/notify/{n}",
                "source_app": APPS[n % len(APPS)],
                "idempotency_key": f"order-{n}",
                "delay_s": 86400,
                "body": {"order": n, "state": "paid"},
            }
            for n in range(start, min(start + batch, total))
        ]
        status, _ = call(base, "POST", "/api/v1/tasks/batch", {"tasks": tasks})
        assert status == 201, status
        return len(tasks)

    began = time.monotonic()
    done = 0
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for count in pool.map(one, range(0, total, batch)):
            done += count
            if done % 100_000 == 0:
                rate = done / (time.monotonic() - began)
                print(f"  filled {done:>9,} tasks ({rate:,.0f}/s)", flush=True)
    return time.monotonic() - began


def sign_in(base):
    form = urllib.parse.urlencode({"token": TOKEN, "next": "/console/overview"}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(base + "/console/login", data=form)
    except urllib.error.HTTPError as answer:
        cookie = answer.headers["Set-Cookie"].split(";")[0]
        return cookie
    raise SystemExit("sign-in did not redirect")


def timed(base, cookie, path, samples):
    times = []
    for _ in range(samples):
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})
        began = time.perf_counter()
        with urllib.request.urlopen(request) as answer:
            answer.read()
            assert answer.status == 200, (path, answer.status)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    return statistics.median(times), p95


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306")
    parser.add_argument("--keep", action="store_true", help="keep the database, to look at query plans")
    args = parser.parse_args()

    database = "console_bench_" + secrets.token_hex(4)
    subprocess.run(["mariadb", "-h127.0.0.1", "-uroot", "-e", f"CREATE DATABASE {database}"], check=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="console-bench-")
    env = dict(
        os.environ,
        CBC__SERVER__BIND=f"127.0.0.1:{port}",
        CBC__DATABASE__URL=f"{args.mysql}/{database}",
        CBC__AUTH__ADMIN_TOKEN=TOKEN,
        CBC__DATA__DIR=data_dir,
        CBC__LOG__LEVEL="warn",
    )
    server = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        print(f"filling {args.tasks:,} tasks on MariaDB ({database})", flush=True)
        fill_start = time.time()
        seconds = fill(base, args.tasks)
        print(f"  filled in {seconds:.0f} s", flush=True)
        # One task with attempts for the detail page: a receiver that refuses.
        _, answer = call(base, "POST", "/api/v1/tasks", {"url": "http://127.0.0.1:9/refused", "max_attempts": 3, "retry_delays_s": [1, 1]})
        detail_id = json.loads(answer)["task_id"]
        time.sleep(4)
        cookie = sign_in(base)
        _, page = call(base, "GET", "/api/v1/tasks?source_app=app3&limit=200")
        cursor = json.loads(page)["next_cursor"]
        pages = [
            ("task list, newest 50", "/console/tasks"),
            ("filtered: application", "/console/tasks?app=app3"),
            ("filtered: host + application", "/console/tasks?host=svc7.example.com&app=app7"),
            ("filtered: status + application", "/console/tasks?status=pending&app=app5"),
            ("filtered: idempotency key", "/console/tasks?key=order-123456"),
            ("filtered: a time range (mid-fill)", "/console/tasks?from={}&to={}".format(
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(fill_start + seconds * 0.25)),
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(fill_start + seconds * 0.5)))),
            ("next page (keyset)", f"/console/tasks?app=app3&cursor={cursor}"),
            ("task detail with attempts", f"/console/tasks/{detail_id}"),
            ("overview", "/console/overview"),
        ]
        print(f"\n{'page':<40} {'p50 ms':>8} {'p95 ms':>8}   ({args.samples} requests each, {args.tasks:,} tasks)")
        for name, path in pages:
            p50, p95 = timed(base, cookie, path, args.samples)
            print(f"{name:<40} {p50:>8.1f} {p95:>8.1f}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if args.keep:
            print(f"kept the database {database}")
        else:
            subprocess.run(["mariadb", "-h127.0.0.1", "-uroot", "-e", f"DROP DATABASE {database}"], check=False)


if __name__ == "__main__":
    sys.exit(main())
