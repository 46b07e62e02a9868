"""The project's own micro-benchmarks (bench/bench_*.cc), as driver steps.

Each step starts `PROG --server` (under usmc for the usmc variant), waits for
its READY line, runs `PROG --client` (under usmc for usmc and fallback) and
reads the client's JSON line.
"""

import os

from .model import Benchmark, Metric, Target, USMC_VARIANTS, higher, lower
from .procs import Server, json_line

# Durations and sizes: full run, then --quick.
FULL = {"pp_iters": 100000, "pp_warmup": 1000, "pp_duration": 2.0,
        "stream_s": 2.0, "conn_s": 2.0,
        "idle_conns": 1000, "idle_settle": 1.0, "idle_s": 3.0,
        "mem_conns": 10000, "mem_settle": 1.0, "mem_s": 1.0}
QUICK = {"pp_iters": 2000, "pp_warmup": 100, "pp_duration": 0.2,
         "stream_s": 0.2, "conn_s": 0.2,
         "idle_conns": 50, "idle_settle": 0.2, "idle_s": 0.3,
         "mem_conns": 500, "mem_settle": 0.1, "mem_s": 0.2}


def run_pair(env, prog, variant, client_args, budget, server_pid=False):
    """One server/client run of bench program `prog`; the client's JSON."""
    binary = env.bench_bin(prog)
    path = os.path.join(env.tmpdir, prog + ".sock")
    unix = variant == "unix"
    listen = ["--unix", path] if unix else ["--tcp", "0"]
    server = Server(env, [binary, "--server"] + listen, variant == "usmc",
                    f"{prog}-server-{variant}")
    with server:
        where = ["--unix", path] if unix else ["--tcp", str(server.port)]
        if server_pid:
            where += ["--server-pid", str(server.pid)]
        out = env.run([binary, "--client"] + where + client_args,
                      variant in USMC_VARIANTS, f"{prog}-client-{variant}",
                      budget + env.step_timeout)
        server.finish(env.step_timeout)
    return json_line(out)


class Micro(Benchmark):
    """A benchmark of one of our own programs."""
    prog = ""

    def __init__(self, quick):
        self.p = QUICK if quick else FULL

    def missing(self, env):
        if os.access(env.bench_bin(self.prog), os.X_OK):
            return None
        return (f"{self.prog} not built (cmake --build {env.build_dir} "
                f"--target {self.prog})")


class PingPong(Micro):
    name = "pingpong"
    title = "64 B request/response, blocking (bench_pingpong)"
    prog = "bench_pingpong"
    variants = ("tcp", "usmc", "unix")
    metrics = (
        Metric("pingpong.median_us", "64 B ping-pong round trip, median",
               "µs", False, lower(20), "RTT p50"),
        Metric("pingpong.p99_us", "64 B ping-pong round trip, p99", "µs",
               False, lower(20), "RTT p99"),
        Metric("pingpong.mean_us", "64 B ping-pong round trip, mean", "µs",
               False),
    )

    def run(self, env, variant):
        p = self.p
        args = ["--size", "64", "--iters", str(p["pp_iters"]),
                "--warmup", str(p["pp_warmup"]),
                "--duration", str(p["pp_duration"])]
        r = run_pair(env, self.prog, variant, args, p["pp_duration"])
        return {("pingpong.median_us", variant): r["median_us"],
                ("pingpong.p99_us", variant): r["p99_us"],
                ("pingpong.mean_us", variant): r["mean_us"]}


class Stream(Micro):
    name = "stream"
    title = "streaming with 64 KiB writes (bench_stream)"
    prog = "bench_stream"
    variants = ("tcp", "usmc", "unix")
    metrics = (Metric("stream.mbps", "streaming, 64 KiB writes", "MB/s", True,
                      higher(2), "stream"),)

    def run(self, env, variant):
        s = self.p["stream_s"]
        r = run_pair(env, self.prog, variant,
                     ["--duration", str(s), "--chunk", "65536"], s)
        return {("stream.mbps", variant): r["mbps"]}


class ConnRate(Micro):
    name = "connrate"
    title = "short connections: connect, 64 B request and reply, close"
    prog = "bench_connrate"
    variants = ("tcp", "usmc", "unix", "fallback")
    metrics = (
        Metric("connrate.cps", "short connections, accelerated", "conn/s",
               True, higher(0.8), "short conns"),
        Metric("connrate_fallback.cps",
               "short connections, fallen back (server not under usmc)",
               "conn/s", True, higher(0.95), "short conns, fallback"),
    )

    def cells(self, variant):
        if variant == "fallback":
            return [("connrate_fallback.cps", "usmc")]
        if variant == "tcp":  # the fallback row compares with the same TCP
            return [("connrate.cps", "tcp"), ("connrate_fallback.cps", "tcp")]
        return [("connrate.cps", variant)]

    def run(self, env, variant):
        s = self.p["conn_s"]
        r = run_pair(env, self.prog, variant,
                     ["--duration", str(s), "--concurrency", "1"], s)
        return {cell: r["cps"] for cell in self.cells(variant)}


class Idle(Micro):
    name = "idle"
    title = "idle connections held by both ends, after the spin window"
    prog = "bench_idle"
    variants = ("tcp", "usmc")
    conns_key, settle_key, seconds_key = "idle_conns", "idle_settle", "idle_s"

    def __init__(self, quick):
        super().__init__(quick)
        k = self.p[self.conns_key]
        self.metrics = (Metric(
            "idle.cpu_pct", f"{k:,} idle connections: CPU of the busier end",
            "% of a core", False, Target("below", 1.0, "< 1 % of a core")),)

    def measure(self, env, variant):
        p = self.p
        k = p[self.conns_key]
        args = ["--conns", str(k), "--settle", str(p[self.settle_key]),
                "--seconds", str(p[self.seconds_key])]
        budget = p[self.settle_key] + p[self.seconds_key] + k / 500.0
        return run_pair(env, self.prog, variant, args, budget, server_pid=True)

    def run(self, env, variant):
        r = self.measure(env, variant)
        cpu = max(r["client_cpu_pct"], r["server_cpu_pct"])
        return {("idle.cpu_pct", variant): cpu}


class Memory(Idle):
    name = "memory"
    title = "memory of many connections (bench_idle, Pss of both ends)"
    conns_key, settle_key, seconds_key = "mem_conns", "mem_settle", "mem_s"

    def __init__(self, quick):
        Micro.__init__(self, quick)
        k = self.p[self.conns_key]
        self.metrics = (Metric(
            "memory.total_mib", f"{k:,} connections: memory of both ends (Pss)",
            "MiB", False, Target("below", 1024.0, "< 1024 MiB")),)

    def run(self, env, variant):
        r = self.measure(env, variant)
        kb = r["client_pss_kb"] + r.get("server_pss_kb", 0)
        return {("memory.total_mib", variant): kb / 1024.0}


def micro_benchmarks(quick):
    return [cls(quick) for cls in (PingPong, Stream, ConnRate, Idle, Memory)]
