"""Real programs from Debian: redis, nginx + wrk, iperf3, sockperf.

Each is started as it is, and for the usmc variant with both the server and
the client under `usmc run`. Nothing is installed: a missing program skips
its rows, with the Debian package that brings it.
"""

import csv
import io
import json
import os
import re

from .model import Benchmark, Metric, higher, lower
from .procs import Server, StepError, free_port, which

FULL = {"redis_n": 200000, "redis_c1_n": 20000, "wrk_s": 3, "iperf_s": 3,
        "sockperf_s": 3}
QUICK = {"redis_n": 2000, "redis_c1_n": 500, "wrk_s": 1, "iperf_s": 1,
         "sockperf_s": 1}


class Tool(Benchmark):
    def __init__(self, quick):
        self.p = QUICK if quick else FULL
        self.paths = {}

    def missing(self, env):
        for program, package in self.tools:
            path = which(program)
            if not path:
                return (f"{program} not found "
                        f"(it comes with: apt-get install {package})")
            self.paths[program] = path
        return None


def parse_redis_csv(text):
    """{"SET": row, "GET": row} from redis-benchmark --csv."""
    rows = {}
    lines = [l for l in text.splitlines() if l.startswith('"')]
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        rows[row["test"]] = row
    if "SET" not in rows or "GET" not in rows:
        raise StepError("redis-benchmark printed no SET/GET results")
    return rows


class Redis(Tool):
    name = "redis"
    title = "redis-server + redis-benchmark (SET, GET; -c 50 and -c 1)"
    variants = ("tcp", "usmc", "unix")
    tools = (("redis-server", "redis-server"),
             ("redis-benchmark", "redis-tools"))
    metrics = (
        Metric("redis.set_rps", "redis-benchmark -c 50 SET", "req/s", True,
               higher(2), "redis SET"),
        Metric("redis.get_rps", "redis-benchmark -c 50 GET", "req/s", True,
               higher(2), "redis GET"),
        Metric("redis.c1_set_p50_us", "redis-benchmark -c 1 SET, p50 latency",
               "µs", False, lower(4), "redis -c1 SET p50"),
        Metric("redis.c1_get_p50_us", "redis-benchmark -c 1 GET, p50 latency",
               "µs", False, lower(4), "redis -c1 GET p50"),
    )

    def server_argv(self, env, variant, port, sock):
        argv = [self.paths["redis-server"], "--bind", "127.0.0.1",
                "--port", "0" if variant == "unix" else str(port),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", "", "--dir", env.tmpdir]
        if variant == "unix":
            argv += ["--unixsocket", sock, "--unixsocketperm", "700"]
        return argv

    def bench(self, env, variant, where, clients, n):
        argv = [self.paths["redis-benchmark"]] + where + [
            "-t", "set,get", "-n", str(n), "-c", str(clients), "--csv"]
        budget = n / 5000.0 + env.step_timeout
        out = env.run(argv, variant == "usmc", f"redis-benchmark-c{clients}",
                      budget)
        return parse_redis_csv(out)

    def run(self, env, variant):
        port = free_port()
        sock = os.path.join(env.tmpdir, "redis.sock")
        ready = ("unix", sock) if variant == "unix" else ("tcp", port)
        where = (["-s", sock] if variant == "unix"
                 else ["-h", "127.0.0.1", "-p", str(port)])
        with Server(env, self.server_argv(env, variant, port, sock),
                    variant == "usmc", f"redis-server-{variant}", ready):
            c50 = self.bench(env, variant, where, 50, self.p["redis_n"])
            c1 = self.bench(env, variant, where, 1, self.p["redis_c1_n"])
        return {
            ("redis.set_rps", variant): float(c50["SET"]["rps"]),
            ("redis.get_rps", variant): float(c50["GET"]["rps"]),
            ("redis.c1_set_p50_us", variant):
                float(c1["SET"]["p50_latency_ms"]) * 1000,
            ("redis.c1_get_p50_us", variant):
                float(c1["GET"]["p50_latency_ms"]) * 1000,
        }


NGINX_CONF = """\
{user}worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  default_type text/html;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {dir}/html;
    location / {{ index index.html; }}
  }}
}}
"""

# About the size of nginx's own welcome page (615 bytes).
INDEX_HTML = ("<!DOCTYPE html>\n<html><head><title>usmc bench</title></head>"
              "<body>\n" + "<p>usmc bench: a small static page.</p>\n" * 14 +
              "</body></html>\n")


def nginx_dir(tmpdir, port):
    """A fresh prefix with nginx.conf and html/index.html; returns it."""
    d = os.path.join(tmpdir, f"nginx-{port}")
    os.makedirs(os.path.join(d, "html"))
    with open(os.path.join(d, "html/index.html"), "w") as f:
        f.write(INDEX_HTML)
    # Workers of a root master would run as nobody, who cannot enter tmpdir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(user=user, workers=os.cpu_count() or 1,
                                  dir=d, port=port))
    return d


def parse_wrk(text):
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if not m:
        raise StepError("wrk printed no Requests/sec")
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    errs = re.search(r"Socket errors:.*", text)
    if bad or errs:
        raise StepError("wrk: " + (bad.group(0) if bad else errs.group(0)))
    return float(m.group(1))


class Nginx(Tool):
    name = "nginx"
    title = "nginx (master + workers, keep-alive) + wrk -t 2 -c 50"
    tools = (("nginx", "nginx"), ("wrk", "wrk"))
    metrics = (Metric("nginx.rps", "nginx + wrk, keep-alive", "req/s", True,
                      higher(1.5), "nginx"),)

    def run(self, env, variant):
        port = free_port()
        d = nginx_dir(env.tmpdir, port)
        argv = [self.paths["nginx"], "-p", d, "-c", f"{d}/nginx.conf",
                "-e", f"{d}/error.log"]
        usmc = variant == "usmc"
        s = self.p["wrk_s"]
        # Several processes and threads on each side: not pinned.
        with Server(env, argv, usmc, f"nginx-{variant}", ("tcp", port),
                    cpu=None):
            out = env.run([self.paths["wrk"], "-t", "2", "-c", "50",
                           "-d", f"{s}s", f"http://127.0.0.1:{port}/"],
                          usmc, f"wrk-{variant}", s + env.step_timeout,
                          cpu=None)
        return {("nginx.rps", variant): parse_wrk(out)}


class Iperf3(Tool):
    name = "iperf3"
    title = "iperf3 TCP throughput"
    tools = (("iperf3", "iperf3"),)
    metrics = (Metric("iperf3.mbps", "iperf3 throughput", "MB/s", True, None,
                      "iperf3"),)

    def run(self, env, variant):
        port = free_port()
        s = self.p["iperf_s"]
        iperf = self.paths["iperf3"]
        usmc = variant == "usmc"
        with Server(env, [iperf, "-s", "-1", "-p", str(port)], usmc,
                    f"iperf3-server-{variant}", ("tcp", port)):
            out = env.run([iperf, "-c", "127.0.0.1", "-p", str(port),
                           "-t", str(s), "-J"], usmc, f"iperf3-{variant}",
                          s + env.step_timeout)
        try:
            bps = json.loads(out)["end"]["sum_received"]["bits_per_second"]
        except (ValueError, KeyError) as e:
            raise StepError(f"iperf3: unexpected output ({e})")
        return {("iperf3.mbps", variant): bps / 8e6}


def parse_sockperf(text):
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    pct = dict(re.findall(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)", text))
    if "50.000" not in pct or "99.000" not in pct:
        raise StepError("sockperf printed no percentiles")
    return float(pct["50.000"]), float(pct["99.000"])


SOCKPERF_OVERHEAD_S = 3  # warm-up and start-up beyond -t


class Sockperf(Tool):
    name = "sockperf"
    title = "sockperf ping-pong, TCP, 64 B (round trip)"
    tools = (("sockperf", "sockperf"),)
    metrics = (
        Metric("sockperf.p50_us", "sockperf ping-pong 64 B round trip, median",
               "µs", False, None, "sockperf p50"),
        Metric("sockperf.p99_us", "sockperf ping-pong 64 B round trip, p99",
               "µs", False, None, "sockperf p99"),
    )

    def run(self, env, variant):
        port = free_port()
        s = self.p["sockperf_s"]
        sp = self.paths["sockperf"]
        where = ["--tcp", "-i", "127.0.0.1", "-p", str(port)]
        usmc = variant == "usmc"
        with Server(env, [sp, "server"] + where, usmc,
                    f"sockperf-server-{variant}", ("tcp", port)):
            out = env.run([sp, "ping-pong"] + where +
                          # sockperf sizes its sequence table from the rate: at
                          # usmc's rate an unpaced run overflows it.
                          ["-t", str(s), "-m", "64", "--full-rtt",
                           "--mps", "1000000"],
                          usmc, f"sockperf-{variant}",
                          s + SOCKPERF_OVERHEAD_S + env.step_timeout)
        p50, p99 = parse_sockperf(out)
        return {("sockperf.p50_us", variant): p50,
                ("sockperf.p99_us", variant): p99}


def tool_benchmarks(quick):
    return [cls(quick) for cls in (Redis, Nginx, Iperf3, Sockperf)]
