#!/usr/bin/env python3
"""usmc bench: usmc and kernel TCP loopback (and Unix sockets) side by side.

Runs every benchmark with TCP, with both ends under `usmc run`, and with Unix
sockets where that applies, R times each; prints medians, spread (min-max),
usmc/TCP ratios and whether each target of issue 4 is met; writes a JSON
result, a PNG chart and the table in docs/BENCHMARKS.md. Installs nothing.
Python standard library only.
"""

import argparse
import datetime
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from usmcbench import report  # noqa: E402
from usmcbench.micro import Micro, micro_benchmarks  # noqa: E402
from usmcbench.model import USMC_VARIANTS  # noqa: E402
from usmcbench.procs import Env, StepError  # noqa: E402
from usmcbench.progress import Progress  # noqa: E402
from usmcbench.tools import tool_benchmarks  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("tcp", "usmc", "unix", "fallback")
GIVE_UP = 3  # usmc steps failed and none passed: usmc is broken, stop trying


def all_benchmarks(quick):
    return micro_benchmarks(quick) + tool_benchmarks(quick)


def parse_args(argv):
    names = ",".join(b.name for b in all_benchmarks(False))
    ap = argparse.ArgumentParser(
        prog="usmc bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"benchmarks: {names}\nvariants: {','.join(VARIANTS)}")
    ap.add_argument("--build-dir", default="build",
                    help="CMake build tree with bench/ and src/ (./build)")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke: tiny durations, 1 repetition")
    ap.add_argument("-r", "--repetitions", type=int,
                    help="runs of each variant (3; --quick: 1)")
    ap.add_argument("--only", help="NAME[,NAME]: just these benchmarks")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="which of tcp,usmc,unix,fallback to run (all)")
    ap.add_argument("--json", help="result file (BUILD/bench/result.json)")
    ap.add_argument("--chart", help="PNG chart (next to the JSON result)")
    ap.add_argument("--docs",
                    default=os.path.join(HERE, "../docs/BENCHMARKS.md"),
                    help="markdown file whose bench table is rewritten")
    docs = ap.add_mutually_exclusive_group()
    docs.add_argument("--write-docs", action="store_true",
                      help="rewrite the table even for --quick or --only")
    docs.add_argument("--no-docs", action="store_true",
                      help="leave docs/BENCHMARKS.md alone")
    ap.add_argument("--step-timeout", type=float,
                    help="seconds a step may overrun its duration (30; "
                         "--quick: 5)")
    ap.add_argument("--time-limit", type=float,
                    help="start no step after this many seconds (none; "
                         "--quick: 40, so that a smoke run ends within 60 s)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not put servers on CPU 0 and clients on CPU 1")
    ap.add_argument("--keep-going", action="store_true",
                    help=f"run usmc steps even after the first {GIVE_UP} "
                         "all failed")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 also when a usmc run fails")
    args = ap.parse_args(argv)
    if args.repetitions is None:
        args.repetitions = 1 if args.quick else 3
    if args.step_timeout is None:
        args.step_timeout = 5.0 if args.quick else 30.0
    if args.time_limit is None and args.quick:
        args.time_limit = 40.0
    args.variants = [v for v in args.variants.split(",") if v]
    bad = set(args.variants) - set(VARIANTS)
    if bad or args.repetitions < 1:
        ap.error(f"bad --variants or --repetitions: {','.join(bad)}")
    args.json = args.json or os.path.join(args.build_dir, "bench/result.json")
    args.chart = args.chart or os.path.splitext(args.json)[0] + ".png"
    return args


def select(benches, only):
    if not only:
        return benches
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    known = {b.name: b for b in benches}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        sys.exit(f"usmc bench: unknown benchmark(s) {', '.join(unknown)}; "
                 f"known: {', '.join(known)}")
    return [known[n] for n in wanted]


def make_plan(benches, env, args, results, notes):
    """The steps to run; fills in what is skipped. Returns (plan, failures)."""
    plan, failures = [], 0
    if env.usmc_note and set(args.variants) & set(USMC_VARIANTS):
        notes.append(f"usmc column: {env.usmc_note}: no {env.lib}")
    for bench in benches:
        why = bench.missing(env)
        if why:
            results.skip(bench, why)
            notes.append(f"skipped {bench.name}: {why}")
            failures += isinstance(bench, Micro)
            continue
        results.add_bench(bench)
        runnable = []
        for variant in bench.variants:
            if variant not in args.variants:
                results.note(bench, variant, "not run (--variants)")
                continue
            if variant in USMC_VARIANTS and env.usmc_note:
                results.note(bench, variant, env.usmc_note)
            else:
                runnable.append(variant)
        for rep in range(args.repetitions):
            plan += [(bench, variant, rep + 1) for variant in runnable]
    return plan, failures


def run_plan(plan, env, results, progress, args):
    """Runs every step; returns (baseline failures, usmc failures)."""
    base_fail = usmc_fail = usmc_ok = 0
    start = time.monotonic()
    for bench, variant, rep in plan:
        tag = f" #{rep}" if args.repetitions > 1 else ""
        progress.start(f"{bench.name} {variant}{tag}")
        usmc = variant in USMC_VARIANTS
        broken = usmc_fail >= GIVE_UP and not usmc_ok
        why = None
        if args.time_limit and time.monotonic() - start > args.time_limit:
            why = "not run: --time-limit reached"
        elif usmc and broken and not args.keep_going:
            why = "not run: usmc kept failing"
        if why:
            results.note(bench, variant, why)
            progress.done(why)
            continue
        t0 = time.monotonic()
        try:
            values = bench.run(env, variant)
        except (StepError, OSError, KeyError, ValueError) as e:
            env.stop_all()
            message = str(e) or type(e).__name__
            results.fail(bench, variant, rep, message)
            progress.fail(message)
            usmc_fail += usmc
            base_fail += not usmc
            continue
        usmc_ok += usmc
        results.add(bench, variant, rep, values, time.monotonic() - t0)
        progress.done(bench.summary(values))
    return base_fail, usmc_fail


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info = {"nproc": os.cpu_count(), "cpu": cpu,
            "kernel": platform.release(), "os": distro}
    info["summary"] = (f"{info['nproc']} CPUs, {cpu}, Linux {info['kernel']}"
                       + (f", {distro}" if distro else ""))
    return info


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def command_line(argv):
    given = os.environ.get("USMC_BENCH_CMDLINE")
    if given:
        return given
    return shlex.join(["python3", os.path.relpath(sys.argv[0])] + list(argv))


def finish(args, env, results, meta, progress):
    rows = results.rows()
    print()
    print(report.console_table(rows))
    for s in results.skipped:
        print(f"not run: {s['benchmark']}: {s['reason']}")
    for e in results.errors:
        print(f"error: {e['benchmark']} {e['variant']} #{e['repetition']}: "
              f"{e['error']}")
    report.write_json(args.json, rows, results, meta)
    print(f"result: {args.json}")
    subtitle = "quick smoke run" if args.quick else meta["date"]
    print(report.write_chart(args.chart, rows, env.tmpdir, subtitle))
    if args.no_docs or not (args.write_docs or not (args.quick or args.only)):
        return
    section = report.markdown_section(rows, results, meta)
    if not os.path.exists(args.docs):
        print(f"table not written: no {args.docs}")
    elif report.write_docs(args.docs, section):
        print(f"table written: {os.path.relpath(args.docs)}")
    else:
        print(f"table not written: markers {report.BEGIN} {report.END} "
              f"missing in {args.docs}")


def main(argv):
    args = parse_args(argv)
    benches = select(all_benchmarks(args.quick), args.only)
    tmpdir = tempfile.mkdtemp(prefix="usmc-bench.")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    env = Env(args.build_dir, tmpdir, args.quick, args.step_timeout, pin)
    results = report.Results()
    notes = []
    plan, hard_fail = make_plan(benches, env, args, results, notes)
    progress = Progress(len(plan))
    for note in notes:
        progress.note(note)
    start, load_start = time.monotonic(), load_average()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        base_fail, usmc_fail = run_plan(plan, env, results, progress, args)
    finally:
        env.stop_all()
    meta = {"command": command_line(argv),
            "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "repetitions": args.repetitions,
            "quick": args.quick, "usmc": env.usmc_how(),
            "pinning": ("servers on CPU 0, clients on CPU 1 (taskset); "
                        "nginx and wrk not pinned" if env.taskset
                        else "none"),
            "build_dir": env.build_dir,
            "load_average": [load_start, load_average()],
            "duration_s": round(time.monotonic() - start, 1)}
    finish(args, env, results, meta, progress)
    print(f"took {meta['duration_s']} s")
    if results.errors:
        print(f"logs of the failed steps: {tmpdir}")
    else:
        shutil.rmtree(tmpdir, ignore_errors=True)
    failed = hard_fail + base_fail + (usmc_fail if args.strict else 0)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
