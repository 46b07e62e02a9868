#!/usr/bin/env python3
"""SMC-R through `usmc run` across two namespace hosts, with link failover.

Builds the two hosts of scripts/netns.sh (usmcA, usmcB, two links), runs
unmodified programs under `usmc run` on both with the fabric environment
(tcp provider, both links, 500 ms keepalive) and takes one side of a link
down while they work:

  redis     redis-server in usmcB, redis-benchmark (set,get; N calibrated to
            last --phase-s seconds per test) and a long-lived redis-cli
            (INCR every 0.2 s, the "keeper") in usmcA. Link 1 goes down
            during the GET phase and stays down until the benchmark ends;
            then it comes back and the keeper's connection must have 2
            links again. Then a second benchmark, and SET/GET of random
            values (1 B .. 1 MiB) through usmc and plain redis-cli.
  stream    smcr_stream.py: a rate-limited pseudo-random stream from usmcA
            to usmcB, sha256 compared end to end; the link goes down at 25%,
            comes back once another 25% went through, and the held
            connection must have 2 links again (--side B: usmcB's interface).
  fallback  cross-host discovery by the kernel capability signal (usmc bpf
            install: TCP option 254 on SYN/SYN-ACK), no remote rule: a
            shorter stream (default 64 MiB, no link toggling) in three
            combinations that must stay plain TCP and match byte for byte:
            plain server + usmc client (client TCP/PEERNOSMC), usmc server +
            plain client (server TCP/PEERNOSMC), usmc server + usmc client
            whose rules say `tcp client *:PORT` (client TCP/RULE, server
            TCP/PEERDECL).
  bpf       the same signal, usmc on both ends and no rules: the shorter
            stream must be RDMA on both ends and match byte for byte.

The rule `remote any 10.77.0.0/16` that redis and stream use is an operator's
declaration that the peer runs usmc: a client with it sends an SMC-R Proposal
on connect, so a plain server would receive CLC bytes. That combination is a
misconfiguration, not a fallback, and is deliberately not tested as one.

fallback and bpf install the signal (`usmc bpf install`) when `usmc bpf
status` says it is not installed, and uninstall it at the end only if they
installed it. `ip netns exec` mounts a fresh /sys, which hides /sys/fs/bpf and
/sys/fs/cgroup (usmc run could neither see the signal nor move the program
into the cgroup the sockops program watches), so these two cases start
their programs with `nsenter --net=/run/netns/NS` (network namespace only).
Checks: `usmc ss -a --json` rows and the decision lines in the usmc logs
("fd=N mode=TCP role=server reason=PEERNOSMC local=... peer=...").

Checks with --expect-mode RDMA (the default): `usmc ss -a --json` shows the
connections in mode RDMA on both sides (2 links before the failure, 2 again
within --readd-s after the interface came back), `usmc stats --json` counts
failovers >= 1 on one side at least, exit codes, no error in the outputs,
data byte for byte, and (redis) the keeper got replies while the link was
down. --expect-mode TCP (or USMC_SMCR_EXPECT_MODE=TCP) checks the same
plumbing with the connections expected in TCP mode (no link, lgr or failover
checks; the link comes back after --down-s so TCP can go on); with usmc's
SMC-R in place, add --rules '' (no remote rule) to keep them TCP.

Usage: test_smcr.py --usmc PATH --netns PATH redis|stream|fallback|bpf
                    [--side A|B] [--link 1|2] [--expect-mode RDMA|TCP]
                    [--rules TEXT] [--keepalive MS] [--keep] ...
Exits 77 (skipped) when not root, or for redis when redis is not installed.
USMC_TEST_KEEP=1 keeps the namespaces and the temp directory (process
outputs, usmc logs); a failed run keeps the temp directory.
"""
import argparse
import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

LOCK = "/run/usmc-fabric-netns.lock"
SKIP = 77
NS = {"A": "usmcA", "B": "usmcB"}
LINKS = {"A": "10.77.1.1,10.77.2.1", "B": "10.77.1.2,10.77.2.2"}
SERVER = "10.77.1.2"
REDIS_PORT = 6390
STREAM_PORT = 6392
RULES = "remote any 10.77.0.0/16"
# The cases that discover the peer by the BPF capability signal (no remote
# rule); their programs run under nsenter (see the docstring).
BPF_CASES = ("fallback", "bpf")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else \
    sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))


class Deadline(Exception):
    pass


def on_deadline(sig, _frame):
    raise Deadline("stopped by %s (overall deadline --deadline-s or "
                   "SIGTERM)" % signal.Signals(sig).name)


def tail_file(path, what, n=30):
    """The first and last lines of a log file, for a failure message."""
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    if len(lines) > n:
        lines = lines[:10] + ["..."] + lines[-(n - 10):]
    return "\n-- %s %s:\n%s" % (what, path, "\n".join(
        "  " + l[:300] for l in lines))


def log(msg):
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


class Proc:
    """A process in its own session inside a namespace, optionally under
    usmc run; stdout+stderr lines (split at \\r too) are collected.
    rules: USMC_RULES for it (None: --rules)."""

    def __init__(self, t, name, side, argv, usmc, stdin=False, rules=None):
        self.name, self.side, self.usmc = name, side, usmc
        self.usmc_log = os.path.join(t.tmp, name + ".usmc.log") if usmc \
            else None
        if usmc:
            with open(self.usmc_log, "a"):
                pass
            os.chmod(self.usmc_log, 0o666)
        self.argv = t.ns_argv(side) + (
            [t.args.usmc, "run", "--"] if usmc else []) + list(argv)
        self.lines = []
        self.cond = threading.Condition()
        self.out_path = os.path.join(t.tmp, name + ".out")
        # `ip netns exec`, nsenter (no --fork) and `usmc run` all exec: the
        # pid is the program's.
        self.p = subprocess.Popen(
            self.argv, env=t.env(side, usmc, self.usmc_log, rules),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.pid = self.p.pid
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        with open(self.out_path, "wb") as f:
            for raw in self.p.stdout:
                f.write(raw)
                f.flush()
                parts = [x.decode(errors="replace").rstrip()
                         for x in raw.split(b"\r")]
                with self.cond:
                    self.lines.extend(x for x in parts if x)
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """The first line matching pred, or None (timeout or exit)."""
        end = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if pred(line):
                        return line
                seen = len(self.lines)
                left = end - time.monotonic()
                if left <= 0 or not self.t.is_alive():
                    return None
                self.cond.wait(min(left, 0.2))

    def last(self, pred):
        with self.cond:
            for line in reversed(self.lines):
                if pred(line):
                    return line
        return None

    def progress(self):
        line = self.last(lambda l: l.startswith("PROGRESS bytes="))
        return int(line.split("=")[1]) if line else 0

    def alive(self):
        return self.p.poll() is None

    def finish(self, timeout):
        """Exit code, or None after killing it when it did not exit."""
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.p.wait()
            self.t.join(5)
            return None
        self.t.join(5)
        return self.p.returncode

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def release(self):
        """Ends a --hold: one line on stdin."""
        try:
            self.p.stdin.write(b"\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def dump(self, tail=40):
        with self.cond:
            lines = self.lines[-tail:]
        out = ["---- %s (pid %d, exit %s): %s" % (
            self.name, self.pid, self.p.poll(), " ".join(self.argv))]
        out += ["  " + l[:300] for l in lines]
        if self.usmc_log and os.path.exists(self.usmc_log):
            with open(self.usmc_log, errors="replace") as f:
                ul = f.read().splitlines()
            if ul:
                out.append("  -- usmc log %s (%d lines)" % (self.usmc_log,
                                                           len(ul)))
                if len(ul) > tail:
                    ul = ul[:15] + ["..."] + ul[-(tail - 15):]
                out += ["  " + l[:300] for l in ul]
        return "\n".join(out)


# ---- usmc ss / stats ---------------------------------------------------------

def values(obj, key):
    """Every value stored under `key` anywhere in obj (recursively)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            else:
                yield from values(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from values(v, key)


def counter(stats, key, pids):
    """Sum of `key` over the processes of stats --json that hold one of
    `pids` (wherever the key sits in a process object)."""
    total = 0
    procs = stats.get("processes") if isinstance(stats, dict) else None
    if not isinstance(procs, list):
        return max([v for v in values(stats, key)
                    if isinstance(v, (int, float))] or [0])
    for p in procs:
        held = set(p.get("pids") or []) | {p.get("pid")}
        if held & set(pids):
            total += sum(v for v in values(p, key)
                         if isinstance(v, (int, float)))
    return total


def holds(row, pids):
    return bool((set(row.get("pids") or []) | {row.get("pid")}) & set(pids))


def pairs(ss, port, client_pids):
    """(client row, server row or None) for each connection of client_pids
    to `port` that is not closed."""
    out = []
    for c in ss:
        if c.get("listening") or c.get("role") != "client" or \
                c.get("peer_port") != port or not holds(c, client_pids) or \
                c.get("state") in ("CLOSED", "PEERABORT"):
            continue
        srv = [s for s in ss if s.get("role") == "server" and
               not s.get("listening") and s.get("local_port") == port and
               s.get("peer_port") == c.get("local_port")]
        out.append((c, srv[0] if srv else None))
    return out


def brief(row):
    if row is None:
        return "-"
    return "%s %s->%s mode=%s%s lgr=%s links=%s" % (
        row.get("state"), row.get("local"), row.get("peer"), row.get("mode"),
        "/" + str(row.get("reason")) if row.get("reason") else "",
        row.get("lgr"), row.get("links"))


class Monitor(threading.Thread):
    """Samples `usmc ss -a --json` and `usmc stats --json` every period."""

    def __init__(self, usmc, period=0.5):
        super().__init__(daemon=True)
        self.usmc, self.period = usmc, period
        self.samples = []  # (monotonic, ss list, stats dict)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.errors = []

    def _json(self, argv):
        try:
            r = subprocess.run([self.usmc] + argv, capture_output=True,
                               text=True, timeout=10)
            return json.loads(r.stdout)
        except (subprocess.TimeoutExpired, ValueError) as e:
            with self.lock:
                if len(self.errors) < 5:
                    self.errors.append("usmc %s: %s" % (" ".join(argv), e))
            return None

    def snapshot(self):
        ss = self._json(["ss", "-a", "--json"])
        st = self._json(["stats", "--json"])
        s = (time.monotonic(), ss if isinstance(ss, list) else [],
             st if isinstance(st, dict) else {})
        with self.lock:
            self.samples.append(s)
        return s

    def run(self):
        while not self.stopped.is_set():
            self.snapshot()
            self.stopped.wait(self.period)

    def stop(self):
        self.stopped.set()
        self.join(15)

    def all(self):
        with self.lock:
            return list(self.samples)

    def max_counter(self, key, pids):
        return max([counter(st, key, pids) for _, _, st in self.all()] or [0])


# ---- the test ----------------------------------------------------------------

class Test:
    def __init__(self, args):
        self.args = args
        self.rdma = args.expect_mode == "RDMA"
        self.tmp = tempfile.mkdtemp(prefix="usmc-smcr-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.errors = []
        self.result = {}
        self.down = None  # (side, link) while an interface is down
        self.bpf_installed = False  # usmc bpf install by this test
        self.mon = Monitor(args.usmc)

    # -- plumbing --

    def ns_argv(self, side):
        """The prefix that runs a command in side's network namespace."""
        if self.args.case in BPF_CASES:
            # Only the network namespace: /sys/fs/bpf and /sys/fs/cgroup
            # stay visible (ip netns exec mounts a fresh /sys).
            return ["nsenter", "--net=/run/netns/" + NS[side]]
        return ["ip", "netns", "exec", NS[side]]

    def env(self, side, usmc, usmc_log, rules=None):
        """rules: USMC_RULES (None: --rules, where '' unsets; a string,
        even '', is set as is: '' means no rule and no rules file)."""
        e = dict(os.environ)
        for k in ("LD_PRELOAD", "USMC_LOG", "USMC_RULES", "USMC_RULES_FILE"):
            e.pop(k, None)
        if usmc:
            e.update(USMC_FABRIC_ALLOW_TCP="1", USMC_FABRIC_PROVIDER="tcp",
                     USMC_FABRIC_LINKS=LINKS[side],
                     USMC_FABRIC_KEEPALIVE_MS=str(self.args.keepalive),
                     USMC_LOG=usmc_log)
            if rules is not None:
                e["USMC_RULES"] = rules
            elif self.args.rules:
                e["USMC_RULES"] = self.args.rules
        return e

    def start(self, name, side, argv, usmc=True, stdin=False, rules=None):
        p = Proc(self, "%02d-%s" % (len(self.procs) + 1, name), side, argv,
                 usmc, stdin, rules)
        self.procs.append(p)
        log("started %s (pid %d)%s" % (
            p.name, p.pid, "" if not usmc else " under usmc" if rules is None
            else " under usmc, rules %r" % rules))
        return p

    def run_cmd(self, name, side, argv, usmc=True, stdin_data=None,
                timeout=30):
        """A one-shot command; returns (rc, stdout bytes, stderr bytes)."""
        ulog = os.path.join(self.tmp, name + ".usmc.log") if usmc else None
        full = self.ns_argv(side) + (
            [self.args.usmc, "run", "--"] if usmc else []) + list(argv)
        try:
            r = subprocess.run(full, input=stdin_data, capture_output=True,
                               env=self.env(side, usmc, ulog),
                               timeout=timeout, start_new_session=True,
                               stdin=None if stdin_data is not None
                               else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"") + (e.stderr or b"")
            self.fail("%s timed out after %ss: %s\n-- its output (tail):\n%s%s"
                      % (name, timeout, " ".join(full),
                         out[-1500:].decode(errors="replace"),
                         tail_file(ulog, "usmc log")))
            return None, b"", b""
        if r.returncode != 0 and ulog:
            # The caller reports the failure; add the usmc log to it.
            r.stderr += tail_file(ulog, "usmc log").encode()
        return r.returncode, r.stdout, r.stderr

    def fail(self, msg):
        log("FAIL: " + msg)
        self.errors.append(msg)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond

    def link(self, state, side=None, n=None):
        side = side or self.args.side
        n = n or self.args.link
        subprocess.run([self.args.netns, "link", side, n, state], check=True)
        self.down = (side, n) if state == "down" else None
        log("link %s %s %s" % (side, n, state))
        return time.monotonic()

    # -- ss checks --

    def want_mode(self, server_usmc):
        return "RDMA" if self.rdma and server_usmc else "TCP"

    def conns_ok(self, ps, mode, server_usmc, links):
        if not ps:
            return False
        for c, s in ps:
            if c.get("mode") != mode:
                return False
            if server_usmc and (s is None or s.get("mode") != mode):
                return False
            if links is not None:
                if c.get("links") != links or s is None or \
                        s.get("links") != links:
                    return False
        return True

    def wait_conns(self, what, port, client_pids, server_usmc, links,
                   timeout, keep_alive=None):
        """Waits for fresh ss samples in which every connection of
        client_pids to port is in the expected mode on both sides (and has
        `links` links, unless None). Records a failure on timeout."""
        mode = self.want_mode(server_usmc)
        end = time.monotonic() + timeout
        ps = []
        while True:
            _, ss, _ = self.mon.snapshot()
            ps = pairs(ss, port, client_pids)
            if self.conns_ok(ps, mode, server_usmc, links):
                c, s = ps[0]
                log("%s: %d connection(s) in mode %s, e.g. client %s | "
                    "server %s" % (what, len(ps), mode, brief(c), brief(s)))
                return True
            if time.monotonic() >= end or (keep_alive and
                                           not keep_alive.alive()):
                break
            time.sleep(0.2)
        self.fail("%s: wanted mode %s%s on %s within %.0f s; connections: %s"
                  "\nss rows on port %d:\n%s" % (
                      what, mode, "" if links is None else
                      " with %d links" % links,
                      "both sides" if server_usmc else "the client side",
                      timeout, "; ".join("client %s | server %s" % (
                          brief(c), brief(s)) for c, s in ps) or "none",
                      port, json.dumps([r for r in ss if
                                        r.get("local_port") == port or
                                        r.get("peer_port") == port],
                                       indent=1)))
        return False

    def first_links_drop(self, port, client_pids, since):
        """Seconds from `since` to the first sample with a connection on
        fewer than 2 links, or None."""
        for t, ss, _ in self.mon.all():
            if t < since:
                continue
            for c, s in pairs(ss, port, client_pids):
                for row in (c, s):
                    if row and isinstance(row.get("links"), int) and \
                            row["links"] < 2:
                        return t - since
        return None

    def check_failovers(self, pids):
        fo = self.mon.max_counter("failovers", pids)
        lf = self.mon.max_counter("link_failures", pids)
        self.result.update(failovers=fo, link_failures=lf)
        if self.rdma:
            self.check(fo >= 1, "usmc stats: failovers=%s link_failures=%s "
                       "(want failovers >= 1 on at least one side)" % (fo, lf))

    # -- redis --

    def bench(self, name, n, proc=False, timeout=120):
        argv = ["redis-benchmark", "-h", SERVER, "-p", str(REDIS_PORT),
                "-c", "8", "-n", str(n), "-t", "set,get", "-d", "64", "-q"]
        if proc:
            return self.start(name, "A", argv)
        t0 = time.monotonic()
        rc, out, err = self.run_cmd(name, "A", argv, timeout=timeout)
        text = (out + err).decode(errors="replace")
        self.check_bench(name, rc, text)
        return text, time.monotonic() - t0

    def check_bench(self, name, rc, text):
        rates = dict(re.findall(r"(SET|GET): ([\d.]+) requests per second",
                                text))
        bad = [l for l in re.split(r"[\r\n]+", text)
               if re.search(r"error", l, re.I) and
               not re.match(r"\s*usmc[\[:]", l)]
        ok = self.check(rc == 0 and set(rates) == {"SET", "GET"} and not bad,
                        "%s: exit %s, rates %s, error lines %s\n%s" % (
                            name, rc, rates, bad[:5], text[-3000:]))
        return {k: float(v) for k, v in rates.items()} if ok else {}

    def case_redis(self):
        for prog in ("redis-server", "redis-benchmark", "redis-cli"):
            if not shutil.which(prog):
                print("SKIP: %s is not installed (Debian package "
                      "redis-server / redis-tools)" % prog)
                return SKIP
        args = self.args
        srv = self.start("redis-server", "B", [
            "redis-server", "--bind", SERVER, "--port", str(REDIS_PORT),
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
            "--dir", self.tmp])
        cli = ["redis-cli", "-h", SERVER, "-p", str(REDIS_PORT)]
        end = time.monotonic() + 20
        while True:
            rc, out, _ = self.run_cmd("ping", "A", cli + ["ping"], usmc=False,
                                      timeout=10)
            if out.strip() == b"PONG":
                break
            if time.monotonic() > end or not srv.alive():
                self.fail("redis-server does not answer PING from usmcA")
                return 1
            time.sleep(0.2)
        log("redis-server answers")

        # Calibration: N such that each test lasts about --phase-s seconds.
        text, took = self.bench("bench-calibrate", args.calib_n, timeout=60)
        rates = dict(re.findall(r"(SET|GET): ([\d.]+) requests per second",
                                text))
        if not rates:
            return 1
        rate = min(float(v) for v in rates.values())
        n = int(min(max(rate * args.phase_s, 50000), 50_000_000))
        self.result.update(calib_rps=int(rate), n=n)
        log("calibration: %s in %.1f s -> N=%d" % (rates, took, n))

        pids = [srv.pid]
        keeper = self.start("keeper", "A", cli + ["-r", "-1", "-i", "0.2",
                                                  "INCR", "smcr:keeper"])
        pids.append(keeper.pid)
        if not keeper.wait_for(lambda l: l.isdigit(), 10):
            self.fail("the keeper (redis-cli INCR loop) got no reply")
        self.wait_conns("keeper", REDIS_PORT, [keeper.pid], True,
                        2 if self.rdma else None, 10)

        bench = self.bench("bench-failover", n, proc=True)
        pids.append(bench.pid)
        if not bench.wait_for(lambda l: re.match(r"SET: [\d.]+ requests", l),
                              args.phase_s * 5 + 30):
            self.fail("the benchmark did not finish its SET test within "
                      "%.0f s (N=%d)" % (args.phase_s * 5 + 30, n))
            return 1
        # The link goes down during the GET test: redis-benchmark makes new
        # connections for each test, and with link 1 (where the server's
        # address lives) down their TCP handshakes could not be made at all.
        accel = self.wait_conns("benchmark GET", REDIS_PORT, [bench.pid],
                                True, 2 if self.rdma else None, 4,
                                keep_alive=bench)
        if not bench.alive():
            self.fail("the benchmark ended before the link went down: "
                      "raise --phase-s")
        if not accel:
            # Taking the link down would only stall plain TCP: it proves
            # nothing. Let the benchmark end and report.
            self.check_bench("bench-failover", bench.finish(60),
                             "\n".join(bench.lines))
            return 1
        keeper_at_down = len(keeper.lines)
        t_down = self.link("down")
        if self.rdma:
            rc = bench.finish(args.phase_s * 4 + 30)
            if rc is None:
                self.fail("the benchmark stalled with link %s down on %s" %
                          (args.link, args.side))
            t_end = time.monotonic()
            keeper_at_up = len(keeper.lines)
            t_up = self.link("up")
        else:
            time.sleep(args.down_s)
            keeper_at_up = len(keeper.lines)
            t_up = self.link("up")
            rc = bench.finish(args.phase_s * 4 + 30)
            t_end = time.monotonic()
        self.result["down_s"] = round(min(t_end, t_up) - t_down, 1)
        self.result["keeper_replies_while_down"] = n_down = \
            keeper_at_up - keeper_at_down
        if self.rdma:
            self.check(n_down > 0, "the keeper got no reply while link %s "
                       "was down on %s" % (args.link, args.side))
        self.check_bench("bench-failover", rc, "\n".join(bench.lines))
        drop = self.first_links_drop(REDIS_PORT, [keeper.pid, bench.pid],
                                     t_down)
        self.result["links_drop_s"] = None if drop is None else round(drop, 1)
        if self.rdma:
            if self.wait_conns("keeper after link up", REDIS_PORT,
                               [keeper.pid], True, 2, args.readd_s,
                               keep_alive=keeper):
                self.result["readd_s"] = round(time.monotonic() - t_up, 1)
        self.mon.snapshot()
        self.check_failovers(pids)

        self.bench("bench-after", args.calib_n, timeout=60)
        self.verify_values(cli)

        keeper.kill(signal.SIGTERM)
        keeper.finish(10)
        nums = [l for l in keeper.lines if not l.startswith("usmc")]
        ints = [int(l) for l in nums if l.isdigit()]
        self.check(ints and nums == [str(i) for i in ints] and
                   ints == list(range(ints[0], ints[0] + len(ints))),
                   "keeper output is not a run of consecutive integers: %s" %
                   nums[-20:])
        self.result["keeper_incrs"] = len(ints)
        return 0

    def verify_values(self, cli):
        rng = random.Random(1234)
        for size in (1, 1000, 100_000, 1 << 20):
            data = rng.randbytes(size)
            key = "smcr:v%d" % size
            rc, out, err = self.run_cmd("set-%d" % size, "A",
                                        cli + ["-x", "SET", key],
                                        stdin_data=data)
            self.check(rc == 0 and out.strip() == b"OK",
                       "SET %s through usmc: rc=%s %r %r" % (
                           key, rc, out[-200:], err[-500:]))
            for usmc in (True, False):
                rc, out, err = self.run_cmd(
                    "get-%d-%s" % (size, "usmc" if usmc else "plain"), "A",
                    cli + ["--raw", "GET", key], usmc=usmc)
                self.check(rc == 0 and out == data + b"\n",
                           "GET %s (%s client): rc=%s, %d bytes back, want "
                           "%d: %r" % (key, "usmc" if usmc else "plain", rc,
                                       len(out) - 1, size, err[-500:]))
        log("values of 1 B .. 1 MiB: SET/GET checked")

    # -- stream --

    def case_stream(self):
        args = self.args
        server_usmc = True
        srv = self.start("stream-server", "B", [
            PY, os.path.join(HERE, "smcr_stream.py"), "server", "--bind",
            SERVER, "--port", str(STREAM_PORT), "--timeout", "600"],
            usmc=server_usmc)
        if not srv.wait_for(lambda l: l.startswith("LISTENING"), 15):
            self.fail("the stream server did not start")
            return 1
        nbytes = args.bytes
        cl = self.start("stream-client", "A", [
            PY, os.path.join(HERE, "smcr_stream.py"), "client", "--host",
            SERVER, "--port", str(STREAM_PORT), "--bytes", str(nbytes),
            "--rate", str(args.rate), "--seed", str(args.seed), "--hold",
            "--timeout", "600"], stdin=True)
        pids = [cl.pid, srv.pid]

        def reached(frac, timeout):
            want = int(nbytes * frac)
            return cl.wait_for(lambda l: (l.startswith("PROGRESS bytes=") and
                                          int(l.split("=")[1]) >= want) or
                               l.startswith("SENT"), timeout)

        if not reached(0.10, 60):
            self.fail("the stream did not get going")
            return 1
        accel = self.wait_conns("stream", STREAM_PORT, [cl.pid], server_usmc,
                                2 if self.rdma and server_usmc else None, 5,
                                keep_alive=cl)
        t_up = None
        if accel:
            reached(0.25, 60)
            if cl.last(lambda l: l.startswith("SENT")):
                self.fail("the stream ended before the link went down: "
                          "raise --bytes or lower --rate")
            at_down = cl.progress()
            t_down = self.link("down")
            if self.rdma:
                # Down until another quarter went through on the other link.
                if not reached(at_down / nbytes + 0.25, 60):
                    self.fail("the stream stalled with link %s down on %s "
                              "(at %d bytes)" % (args.link, args.side,
                                                  cl.progress()))
            else:
                time.sleep(args.down_s)
            t_up = self.link("up")
            self.result["down_s"] = round(t_up - t_down, 1)
            self.result["bytes_while_down"] = cl.progress() - at_down
            drop = self.first_links_drop(STREAM_PORT, [cl.pid], t_down)
            self.result["links_drop_s"] = None if drop is None \
                else round(drop, 1)
        if not cl.wait_for(lambda l: l.startswith("SENT"), 120):
            self.fail("the client did not send everything")
        if self.rdma and t_up is not None:
            # The client holds the connection open after SENT.
            if self.wait_conns("stream after link up", STREAM_PORT,
                               [cl.pid], True, 2, args.readd_s,
                               keep_alive=cl):
                self.result["readd_s"] = round(time.monotonic() - t_up, 1)
        self.mon.snapshot()
        cl.release()
        rc_c = cl.finish(120)
        rc_s = srv.finish(30)
        self.result["mbps"] = self.check_stream("stream", cl, srv, rc_c, rc_s,
                                                nbytes)
        if t_up is not None:
            self.check_failovers(pids)
        return 0

    def check_stream(self, what, cl, srv, rc_c, rc_s, nbytes):
        """Exit codes, the client's OK (the server's sha256 matched) and the
        server's RECEIVED line against SENT; returns the rate (MB/s)."""
        sent = cl.last(lambda l: l.startswith("SENT"))
        ok = cl.last(lambda l: l.startswith("OK"))
        got = srv.last(lambda l: l.startswith("RECEIVED"))
        self.check(rc_c == 0 and rc_s == 0 and ok,
                   "%s: client exit %s (%s), server exit %s" % (
                       what, rc_c, ok or
                       cl.last(lambda l: l.startswith("MISMATCH"))
                       or cl.last(lambda l: True), rc_s))
        if sent and got:
            want = sent.split()[1:3]
            self.check(got.split()[1:3] == want,
                       "%s: sent %s, server received %s" % (what, want, got))
            self.check(want[0] == "bytes=%d" % nbytes,
                       "%s: sent %s, want %d bytes" % (what, want[0], nbytes))
        m = re.search(r"mbps=([\d.]+)", ok or sent or "")
        return m.group(1) if m else None

    # -- fallback, bpf: discovery by the BPF capability signal --

    def bpf_status(self):
        r = subprocess.run([self.args.usmc, "bpf", "status"],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).strip()

    def bpf_install(self):
        """Installs the signal unless `usmc bpf status` says it is installed
        (then it is left alone at the end). False: a failure is recorded."""
        rc, out = self.bpf_status()
        if rc == 0:
            log("BPF signal already installed (left in place): %s" % (
                out.splitlines()[0] if out else ""))
            return True
        # Set before installing: an install cut short (deadline) is undone
        # too (install replaces, uninstall removes an incomplete one).
        self.bpf_installed = True
        r = subprocess.run([self.args.usmc, "bpf", "install"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            self.fail("usmc bpf install: exit %s: %s" % (
                r.returncode, (r.stdout + r.stderr).strip()[-2000:]))
            return False
        rc, out = self.bpf_status()
        if not self.check(rc == 0, "usmc bpf status after install: exit %s:"
                          " %s" % (rc, out[-2000:])):
            return False
        log("installed the BPF signal (usmc bpf install)")
        return True

    def bpf_uninstall(self):
        """Uninstalls the signal if this test installed it."""
        if not self.bpf_installed:
            return
        self.bpf_installed = False
        try:
            r = subprocess.run([self.args.usmc, "bpf", "uninstall"],
                               capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            self.fail("usmc bpf uninstall timed out")
            return
        if self.check(r.returncode == 0, "usmc bpf uninstall: exit %s: %s" % (
                r.returncode, (r.stdout + r.stderr).strip()[-2000:])):
            log("uninstalled the BPF signal (usmc bpf uninstall)")

    @staticmethod
    def reason_name(row):
        """The fallback reason as usmc ss shows it: NAME, or PEERDECL/NAME
        when the peer declined with diagnosis NAME."""
        r = row.get("reason")
        if row.get("reason_origin") == "peer" and r != "PEERDECL":
            return "PEERDECL/%s" % r
        return r

    @staticmethod
    def mode_ok(mode, reason, want):
        """want: (mode, reason or None); reason PEERDECL also takes
        PEERDECL/NAME (declined by the peer, diagnosis NAME)."""
        if mode != want[0]:
            return False
        if want[1] is None:
            return True
        return reason == want[1] or (want[1] == "PEERDECL" and
                                     str(reason).startswith("PEERDECL/"))

    def conn_rows(self, ss, port, role, pid):
        """The non-listening rows of `pid` on `port` in `role`."""
        key = "peer_port" if role == "client" else "local_port"
        return [r for r in ss if not r.get("listening") and
                r.get("role") == role and r.get(key) == port and
                holds(r, [pid])]

    def decisions(self, proc, role, port):
        """(mode, reason) of the decision lines in proc's usmc log for its
        connections on `port` in `role`."""
        out = []
        if not proc.usmc_log or not os.path.exists(proc.usmc_log):
            return out
        with open(proc.usmc_log, errors="replace") as f:
            for line in f:
                m = re.search(r"mode=(\S+) role=(client|server)"
                              r"(?: reason=(\S+))? local=(\S+) peer=(\S+)",
                              line)
                if not m or m.group(2) != role:
                    continue
                addr = m.group(5) if role == "client" else m.group(4)
                if addr.endswith(":%d" % port):
                    out.append((m.group(1), m.group(3)))
        return out

    def stream_combo(self, tag, port, server, client):
        """One checked stream of --bytes from usmcA to usmcB:`port`, no link
        toggling. server, client: None (plain, not under usmc) or (rules,
        mode, reason): under usmc with USMC_RULES=rules, the connection
        expected in `mode` (and for TCP, fallback `reason`) in usmc ss and
        in the decision log."""
        args = self.args
        nbytes = args.bytes
        srv = self.start(tag + "-server", "B", [
            PY, os.path.join(HERE, "smcr_stream.py"), "server", "--bind",
            SERVER, "--port", str(port), "--timeout", "120"],
            usmc=server is not None,
            rules=server[0] if server is not None else None)
        if not srv.wait_for(lambda l: l.startswith("LISTENING"), 15):
            self.fail("%s: the stream server did not start" % tag)
            srv.kill()
            srv.finish(5)
            return
        cl = self.start(tag + "-client", "A", [
            PY, os.path.join(HERE, "smcr_stream.py"), "client", "--host",
            SERVER, "--port", str(port), "--bytes", str(nbytes),
            "--rate", str(args.rate), "--seed", str(args.seed), "--hold",
            "--timeout", "120"], usmc=client is not None, stdin=True,
            rules=client[0] if client is not None else None)
        if not cl.wait_for(lambda l: l.startswith("SENT"), 90):
            self.fail("%s: the client did not send everything" % tag)
        # The client holds the connection open after SENT: both ends' rows
        # are there to be checked.
        want = {}
        if client is not None:
            want["client"] = (cl, client[1:])
        if server is not None:
            want["server"] = (srv, server[1:])
        end = time.monotonic() + 10
        while True:
            _, ss, _ = self.mon.snapshot()
            rows = {role: self.conn_rows(ss, port, role, p.pid)
                    for role, (p, _) in want.items()}
            good = all(rows[role] and all(self.mode_ok(
                r.get("mode"), self.reason_name(r), w) for r in rows[role])
                for role, (_, w) in want.items())
            if good or time.monotonic() >= end or not cl.alive():
                break
            time.sleep(0.2)
        seen = []
        for role, (p, w) in want.items():
            rs = rows[role]
            seen.append("%s %s" % (role, ", ".join(brief(r) for r in rs)
                                   or "no row"))
            self.check(rs and all(self.mode_ok(
                r.get("mode"), self.reason_name(r), w) for r in rs),
                "%s: usmc ss: wanted the %s in mode %s%s; rows: %s\n%s" % (
                    tag, role, w[0], "/" + w[1] if w[1] else "",
                    "; ".join(brief(r) for r in rs) or "none",
                    json.dumps(rs, indent=1)))
        log("%s: %s" % (tag, " | ".join(seen)))
        cl.release()
        rc_c = cl.finish(60)
        rc_s = srv.finish(30)
        mbps = self.check_stream(tag, cl, srv, rc_c, rc_s, nbytes)
        # The decision lines ("fd=N mode=TCP role=server reason=... local=...
        # peer=...") of each end under usmc say the same.
        got = {}
        for role, (p, w) in want.items():
            ds = self.decisions(p, role, port)
            got[role] = ",".join("%s%s" % (m, "/" + r if r else "")
                                 for m, r in ds) or "-"
            self.check(ds and all(self.mode_ok(m, r, w) for m, r in ds),
                       "%s: decision log of the %s: %s, wanted mode %s%s%s" % (
                           tag, role, ds or "no decision line for port %d" %
                           port, w[0], "/" + w[1] if w[1] else "",
                           tail_file(p.usmc_log, "usmc log")))
        self.result[tag] = "%s,mbps=%s" % (
            ",".join("%s:%s" % kv for kv in sorted(got.items())), mbps)

    def case_fallback(self):
        """The BPF signal, no remote rule: every combination stays TCP.
        (Not tested: a client with the rule `remote any ...` against a
        plain server. That rule declares the peer runs usmc, so the client
        proposes SMC-R on connect and the server would read CLC bytes: a
        misconfiguration, not a fallback.)"""
        # The plain server's SYN-ACK has no option: the client never
        # proposes.
        self.stream_combo("plain_server", STREAM_PORT, None,
                          ("", "TCP", "PEERNOSMC"))
        # The plain client's SYN has no option: the server expects no CLC.
        self.stream_combo("plain_client", STREAM_PORT + 1,
                          ("", "TCP", "PEERNOSMC"), None)
        # Both under usmc (option on SYN and SYN-ACK), the client's rule says
        # tcp: it declines, the server sees the peer's decline.
        port = STREAM_PORT + 2
        self.stream_combo("client_rule", port, ("", "TCP", "PEERDECL"),
                          ("tcp client *:%d" % port, "TCP", "RULE"))
        return 0

    def case_bpf(self):
        """The BPF signal, no rules, usmc on both ends: SMC-R."""
        mode = self.want_mode(True)
        self.stream_combo("usmc_both", STREAM_PORT, ("", mode, None),
                          ("", mode, None))
        return 0

    # -- driver --

    def run(self):
        self.mon.start()
        try:
            if self.args.case in BPF_CASES and not self.bpf_install():
                rc = 1
            elif self.args.case == "redis":
                rc = self.case_redis()
            elif self.args.case == "stream":
                rc = self.case_stream()
            elif self.args.case == "fallback":
                rc = self.case_fallback()
            else:
                rc = self.case_bpf()
        except Deadline as e:
            self.fail(str(e))
            rc = 1
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if self.down:
                self.link("up", *self.down)
            for p in self.procs:
                p.kill()
            for p in self.procs:
                p.finish(10)
            try:
                self.bpf_uninstall()
            finally:
                self.mon.stop()
        if rc == SKIP:
            return SKIP
        if self.mon.errors:
            self.fail("usmc ss/stats failed: %s" % self.mon.errors)
        if rc != 0 and not self.errors:
            self.fail("case returned %s" % rc)
        return self.report()

    def report(self):
        if self.errors:
            print("==== diagnostics")
            for p in self.procs:
                print(p.dump())
            samples = self.mon.all()
            if samples:
                _, ss, st = samples[-1]
                pids = {p.pid for p in self.procs}
                print("---- last usmc ss -a --json (our processes)")
                for r in ss:
                    if holds(r, pids):
                        print(json.dumps(r))
                print("---- last usmc stats --json (our processes)")
                procs = st.get("processes")
                for p in procs if isinstance(procs, list) else [st]:
                    if holds(p, pids) or p is st:
                        print(json.dumps(p))
            subprocess.run([self.args.netns, "status"])
        print("RESULT case=%s side=%s link=%s expect=%s %s" % (
            self.args.case, self.args.side, self.args.link,
            self.args.expect_mode, " ".join(
                "%s=%s" % kv for kv in self.result.items())))
        for e in self.errors:
            print("FAIL: " + e.splitlines()[0])
        print("PASS" if not self.errors else "FAILED")
        return 0 if not self.errors else 1

    def cleanup(self, keep):
        if keep:
            print("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def wait_links_up(timeout=10):
    """Waits until the four veth ends are operationally up (carrier)."""
    end = time.monotonic() + timeout
    while True:
        states = {}
        for side, ns in NS.items():
            out = subprocess.run(["ip", "-n", ns, "-br", "link"],
                                 capture_output=True, text=True).stdout
            for line in out.splitlines():
                f = line.split()
                if len(f) >= 2 and f[0].startswith("uf"):
                    states[f[0].split("@")[0]] = f[1]
        if len(states) == 4 and set(states.values()) == {"UP"}:
            return True
        if time.monotonic() > end:
            print("netns links not up after %ss: %s" % (timeout, states))
            return False
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("case", choices=["redis", "stream", "fallback", "bpf"])
    ap.add_argument("--usmc", required=True, help="the usmc CLI")
    ap.add_argument("--netns", required=True, help="scripts/netns.sh")
    ap.add_argument("--side", choices=["A", "B"], default="A",
                    help="namespace whose interface goes down (A: clients)")
    ap.add_argument("--link", choices=["1", "2"], default="1")
    ap.add_argument("--expect-mode", choices=["RDMA", "TCP"],
                    default=os.environ.get("USMC_SMCR_EXPECT_MODE", "RDMA"),
                    help="TCP: check only the plumbing (default: "
                    "$USMC_SMCR_EXPECT_MODE or RDMA)")
    ap.add_argument("--rules", default=RULES,
                    help="USMC_RULES of the processes under usmc ('' unsets)")
    ap.add_argument("--keepalive", type=int, default=500, help="ms")
    ap.add_argument("--readd-s", type=float, default=10.0,
                    help="bound for the link to be back after the interface")
    ap.add_argument("--down-s", type=float, default=3.0,
                    help="TCP mode: how long the interface stays down")
    ap.add_argument("--phase-s", type=float, default=6.0,
                    help="redis: seconds each benchmark test should last")
    ap.add_argument("--calib-n", type=int, default=50000,
                    help="redis: requests of the calibration run")
    ap.add_argument("--bytes", type=int, default=None,
                    help="stream: bytes to send (default 512 MiB; fallback, "
                    "bpf: 64 MiB per stream)")
    ap.add_argument("--rate", type=float, default=64.0,
                    help="stream: MB/s (0: unlimited)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--deadline-s", type=int, default=240,
                    help="overall bound: then clean up and fail (keep it "
                    "below the CTest TIMEOUT)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the namespaces and the temp directory")
    args = ap.parse_args()
    if args.bytes is None:
        args.bytes = (64 << 20) if args.case in BPF_CASES else (512 << 20)
    keep = args.keep or os.environ.get("USMC_TEST_KEEP") == "1"
    if os.geteuid() != 0:
        print("SKIP: the SMC-R test needs root (it builds network namespaces)")
        return SKIP
    if args.case == "redis" and not (shutil.which("redis-server") and
                                     shutil.which("redis-benchmark")):
        print("SKIP: redis-server / redis-benchmark are not installed")
        return SKIP
    if not os.access(args.usmc, os.X_OK):
        print("FAIL: no usmc CLI at %s" % args.usmc)
        return 1
    if args.case in BPF_CASES and not shutil.which("nsenter"):
        print("SKIP: nsenter (util-linux) is not installed")
        return SKIP
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        signal.signal(signal.SIGALRM, on_deadline)
        signal.signal(signal.SIGTERM, on_deadline)
        signal.alarm(args.deadline_s)
        subprocess.run([args.netns, "up"], check=True)
        wait_links_up()
        t = Test(args)
        try:
            return t.run()
        finally:
            # A failed run keeps its outputs and usmc logs.
            t.cleanup(keep or bool(t.errors))
            if not keep:
                subprocess.run([args.netns, "down"])


if __name__ == "__main__":
    sys.exit(main())
