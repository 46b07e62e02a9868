"""Shared harness of the usmc integration tests (python3 stdlib only).

Every test starts real processes, on free ports of 127.0.0.1 / ::1, each in
its own session (so the whole process tree can be killed), with timeouts.
A process runs either plainly or under `usmc run --` with USMC_LOG pointing at
a per-process log file; the tests then check the mode each side logged:

  usmc[PID]: fd=N mode=SHM role=client|server local=ADDR:PORT peer=ADDR:PORT
  usmc[PID]: fd=N mode=TCP role=... reason=NAME local=... peer=...

Command line of every test script:
  SCRIPT BUILD_DIR SOURCE_DIR [--variants plain|usmc|all] [unittest args]

  plain : only the variants without usmc (must pass today)
  usmc  : only the variants with usmc on at least one side; they FAIL loudly
          when the preload library or the CLI is missing.
Environment: USMC_TEST_PLAIN_ONLY=1 turns a "usmc" run into a skip (exit 77),
USMC_TEST_QUICK=1 shrinks the transfer sizes (sanitizer builds),
USMC_TEST_KEEP=1 keeps the temp directories for inspection.
"""

import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SKIP_EXIT = 77


class Config:
    build = None
    src = None
    variants = "plain"
    quick = os.environ.get("USMC_TEST_QUICK") == "1"
    keep = os.environ.get("USMC_TEST_KEEP") == "1"
    # Processes that hung (watchdog or harness timeout) in this run; after
    # MAX_HANGS the remaining scenarios fail at once, which bounds the time a
    # broken build costs (every hang costs a watchdog period).
    hangs = 0
    MAX_HANGS = 3


CFG = Config()

# Variants: (client under usmc, server under usmc).
PLAIN = (False, False)
BOTH = (True, True)
CLIENT_ONLY = (True, False)
SERVER_ONLY = (False, True)


def variant_name(v):
    return "%s-client/%s-server" % ("usmc" if v[0] else "plain",
                                    "usmc" if v[1] else "plain")


def matrix_variants():
    """The four-way matrix, restricted to the selected group."""
    if CFG.variants == "plain":
        return [PLAIN]
    if CFG.variants == "usmc":
        return [BOTH, CLIENT_ONLY, SERVER_ONLY]
    return [PLAIN, BOTH, CLIENT_ONLY, SERVER_ONLY]


def pair_variants():
    """Both sides plain, or both under usmc."""
    return {"plain": [PLAIN], "usmc": [BOTH]}.get(CFG.variants, [PLAIN, BOTH])


def size(full, quick):
    return quick if CFG.quick else full


def tool(name):
    return os.path.join(CFG.build, "tests", name)


def usmc_cli():
    return os.path.join(CFG.build, "src", "cli", "usmc")


def preload_lib():
    return os.path.join(CFG.build, "src", "preload", "libusmc.so")


def system_python():
    """Debian's python3 for the programs under test (not a pyenv shim)."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
        else sys.executable


def helper(name):
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


# ---- ports -------------------------------------------------------------------

def _listening_ports():
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def free_port():
    """A free port below the ephemeral range (so no outgoing connection can
    be holding it), checked by binding it on IPv4 and IPv6."""
    rng = random.Random(os.getpid() * 1000003 + time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if port in _listening_ports():
            continue
        try:
            for fam, host in ((socket.AF_INET, "127.0.0.1"),
                              (socket.AF_INET6, "::1")):
                with socket.socket(fam, socket.SOCK_STREAM) as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port found")


def _registry_has(port):
    suffix = ".%d" % port
    try:
        with open("/proc/net/unix") as f:
            for line in f:
                name = line.split()[-1] if len(line.split()) >= 8 else ""
                if name.startswith("@usmc.L.") and name.endswith(suffix):
                    return True
    except FileNotFoundError:
        pass
    return False


# ---- usmc decision logs ------------------------------------------------------

DECISION = re.compile(r"usmc\[(?P<pid>\d+)\]: (?P<fields>fd=\d+ mode=.*)$")
FIELD = re.compile(r"(\w+)=('[^']*'|\"[^\"]*\"|\S+)")


def parse_decision(line):
    """A decision line as a dict (pid, fd, mode, role, reason, local, peer,
    and any extra key=value fields), or None for other lines."""
    m = DECISION.search(line)
    if not m:
        return None
    d = {"pid": m.group("pid"), "reason": None, "local": None, "peer": None}
    d.update((k, v.strip("'\"")) for k, v in FIELD.findall(m.group("fields")))
    if d.get("mode") not in ("SHM", "TCP") or d.get("role") not in (
            "client", "server"):
        return None
    return d


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def decisions(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        return [d for d in map(parse_decision, f) if d]


def tcp_socket_bytes(lport, rport):
    """(bytes_acked, bytes_received) of every TCP socket (any state) with
    local port `lport` and remote port `rport`, from `ss -tinH`."""
    out = subprocess.run(
        ["ss", "-tinH", "( sport = :%d and dport = :%d )" % (lport, rport)],
        capture_output=True, text=True, timeout=10).stdout
    res = []
    # ss prints each socket on two lines; the second one holds the counters.
    for line in out.splitlines():
        if "bytes_" not in line and "rtt:" not in line:
            continue
        a = re.search(r"bytes_acked:(\d+)", line)
        r = re.search(r"bytes_received:(\d+)", line)
        res.append((int(a.group(1)) if a else 0, int(r.group(1)) if r else 0))
    return res, out


# ---- processes ---------------------------------------------------------------

def _precreate(log):
    """Creates the usmc log writable for everyone: servers that drop
    privileges (nginx workers, memcached -u nobody) log into it too."""
    with open(log, "a"):
        pass
    os.chmod(log, 0o666)


class Ran:
    """A finished one-shot command (see Case.run_cmd)."""

    def __init__(self, name, argv, rc, stdout, stderr, log):
        self.name, self.argv, self.rc = name, argv, rc
        self.stdout, self.stderr, self.log = stdout, stderr, log


class Proc:
    """A process in its own session; stdout lines are collected by a thread,
    stderr goes to a file."""

    def __init__(self, case, name, argv, usmc=False, env=None, stdin=False,
                 cwd=None):
        self.case, self.name = case, name
        self.log = os.path.join(case.tmp, name + ".usmc.log") if usmc else None
        self.stderr_path = os.path.join(case.tmp, name + ".stderr")
        full_env = dict(os.environ)
        full_env.pop("USMC_LOG", None)
        full_env.update(env or {})
        if usmc:
            case.require_usmc()
            argv = [usmc_cli(), "run", "--"] + list(argv)
            full_env["USMC_LOG"] = self.log
            _precreate(self.log)
        self.argv = argv
        self.lines = queue.Queue()
        self.out = []
        with open(self.stderr_path, "wb") as err:
            self.p = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err, env=full_env, cwd=cwd,
                start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(os.path.join(self.case.tmp, self.name + ".stdout"), "w") as f:
            for raw in self.p.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                f.write(line + "\n")
                f.flush()
                self.out.append(line)
                self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self):
        return self.p.pid

    def context(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                err = f.read()[-3000:]
        except OSError:
            err = ""
        return "[%s] %s\n  stdout: %s\n  stderr: %s" % (
            self.name, " ".join(self.argv), "\n  ".join(self.out[-20:]),
            err.strip().replace("\n", "\n  "))

    def expect(self, prefix, timeout=20):
        """Waits for a stdout line starting with `prefix` and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
                if left <= 0:
                    CFG.hangs += 1
                    self.case.fail("%s: no '%s' line within %ss\n%s" % (
                        self.name, prefix, timeout, self.context()))
                continue
            if line is None:
                self.p.wait()
                if self.out and "timeout (watchdog)" in self.out[-1]:
                    CFG.hangs += 1
                self.case.fail("%s exited (rc=%s) before printing '%s'\n%s" %
                               (self.name, self.p.returncode, prefix,
                                self.context()))
            if line.startswith(prefix):
                return line

    def wait(self, timeout=60):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            CFG.hangs += 1
            self.case.fail("%s did not finish within %ss\n%s" %
                           (self.name, timeout, self.context()))

    def result(self, timeout=60):
        """Waits for exit 0 and an "OK" last line; returns its key=value dict."""
        rc = self.wait(timeout)
        self.reader.join(timeout=10)
        last = self.out[-1] if self.out else ""
        if "timeout (watchdog)" in last:
            CFG.hangs += 1
        if rc != 0 or not last.startswith("OK"):
            self.case.fail("%s failed (rc=%s)\n%s" %
                           (self.name, rc, self.context()))
        return dict(kv.split("=", 1) for kv in last.split() if "=" in kv)

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def close_stdin(self):
        if self.p.stdin:
            self.p.stdin.close()


class Case(unittest.TestCase):
    """Base class: a temp dir, process bookkeeping, usmc checks."""

    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="usmc-it-")
        os.chmod(self.tmp, 0o755)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.kill()
            try:
                p.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            p.reader.join(timeout=5)
            for f in (p.p.stdout, p.p.stdin):
                if f and not p.reader.is_alive():
                    f.close()
        if CFG.keep:
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def require_usmc(self):
        missing = [p for p in (preload_lib(), usmc_cli())
                   if not os.path.exists(p)]
        if missing:
            self.fail("usmc is not built: missing %s. The usmc variants cannot "
                      "pass without it (set USMC_TEST_PLAIN_ONLY=1 to run only "
                      "the plain variants)." % ", ".join(missing))

    def start(self, name, argv, usmc=False, **kw):
        if CFG.hangs >= CFG.MAX_HANGS:
            self.fail("giving up: %d processes already hung in this run" %
                      CFG.hangs)
        self.nprocs = getattr(self, "nprocs", 0) + 1
        p = Proc(self, "%s.%d" % (name, self.nprocs), argv, usmc=usmc, **kw)
        self.procs.append(p)
        return p

    def run_cmd(self, name, argv, usmc=False, stdin_path=None, timeout=120,
            env=None, check=True):
        """Runs a one-shot command to completion; returns a Ran (rc, stdout
        bytes, log). Fails (with stderr) on a non-zero exit when `check`."""
        if CFG.hangs >= CFG.MAX_HANGS:
            self.fail("giving up: %d processes already hung in this run" %
                      CFG.hangs)
        self.runs = getattr(self, "runs", 0) + 1
        name = "%s.%d" % (name, self.runs)
        log = os.path.join(self.tmp, name + ".usmc.log") if usmc else None
        full_env = dict(os.environ)
        full_env.pop("USMC_LOG", None)
        full_env.update(env or {})
        if usmc:
            self.require_usmc()
            argv = [usmc_cli(), "run", "--"] + list(argv)
            full_env["USMC_LOG"] = log
            _precreate(log)
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        try:
            r = subprocess.run(argv, stdin=stdin, capture_output=True,
                               env=full_env, timeout=timeout,
                               start_new_session=True)
        except subprocess.TimeoutExpired:
            CFG.hangs += 1
            self.fail("%s timed out after %ss: %s" % (name, timeout, argv))
        finally:
            if stdin_path:
                stdin.close()
        ran = Ran(name, argv, r.returncode, r.stdout, r.stderr, log)
        if check and r.returncode != 0:
            self.fail("%s failed (rc=%d): %s\nstdout: %s\nstderr: %s" % (
                name, r.returncode, " ".join(argv), r.stdout[-2000:],
                r.stderr[-2000:]))
        return ran

    def start_listener(self, name, argv, usmc=False, **kw):
        """Starts a tool that prints 'LISTEN port=N'; returns (proc, port)."""
        p = self.start(name, argv, usmc=usmc, **kw)
        return p, int(p.expect("LISTEN port=").split("=", 1)[1])

    def wait_listen(self, proc, port, usmc=False, timeout=30):
        """Waits until `port` is in LISTEN state (and, for a server under
        usmc, until its registry entry exists) without connecting to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.p.poll() is not None:
                self.fail("%s exited (rc=%s) before listening on %d\n%s" % (
                    proc.name, proc.p.returncode, port, proc.context()))
            if port in _listening_ports() and (not usmc or _registry_has(port)):
                return
            time.sleep(0.02)
        self.fail("%s: port %d not %s within %ss\n%s" % (
            proc.name, port, "registered (@usmc.L.*.%d)" % port if usmc
            else "listening", timeout, proc.context()))

    def wait_sleeping(self, proc, timeout=10):
        """Waits until every thread of `proc` sleeps in the kernel (state S):
        a process blocked in recv/poll must not spin."""
        deadline = time.monotonic() + timeout
        states = ""
        while time.monotonic() < deadline:
            try:
                tids = os.listdir("/proc/%d/task" % proc.pid)
                states = ""
                for t in tids:
                    with open("/proc/%d/task/%s/stat" % (proc.pid, t)) as f:
                        states += f.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                states = "?"
            if states and set(states) == {"S"}:
                return
            time.sleep(0.01)
        self.fail("%s never went to sleep (thread states %r): busy waiting?" %
                  (proc.name, states))

    # ---- mode checks ---------------------------------------------------------

    def side_decisions(self, procs, role, port):
        out = []
        for p in procs:
            for d in decisions(p.log):
                if d["role"] == role and not d["peer"]:
                    self.fail("decision line without local=/peer= (the log "
                              "format requires them): %s" % d)
                key = d["local"] if role == "server" else d["peer"]
                if d["role"] == role and port_of(key) == port:
                    out.append(d)
        return out

    def check_modes(self, variant, port, server, clients, conns=None,
                    reasons=None):
        """Checks the decisions each usmc side logged for connections to
        `port`: SHM when both sides run under usmc, TCP with a reason
        otherwise; `conns` = exact number of connections (if known)."""
        cu, su = variant
        want = "SHM" if cu and su else "TCP"
        sides = []
        if su:
            sides.append(("server", [server]))
        if cu:
            sides.append(("client", clients))
        found = {}
        for role, procs in sides:
            ds = self.side_decisions(procs, role, port)
            ctx = "\n".join(open(p.log, errors="replace").read()[-4000:]
                            if p.log and os.path.exists(p.log) else
                            "(no log %s)" % p.log for p in procs)
            self.assertTrue(ds, "%s: no %s decision logged for port %d\n%s" %
                            (variant_name(variant), role, port, ctx))
            for d in ds:
                self.assertEqual(d["mode"], want, "%s: %s logged %s\n%s" % (
                    variant_name(variant), role, d, ctx))
                if want == "TCP":
                    self.assertTrue(d["reason"], "TCP without reason: %s" % d)
                    if reasons and role in reasons:
                        self.assertIn(d["reason"], reasons[role], str(d))
            if conns is not None:
                self.assertEqual(len(ds), conns, "%s: %d %s decisions for %d "
                                 "connections\n%s" % (variant_name(variant),
                                                      len(ds), role, conns, ctx))
            found[role] = ds
        if cu and su:
            self.assertEqual(
                sorted(port_of(d["peer"]) for d in found["server"]),
                sorted(port_of(d["local"]) for d in found["client"]),
                "server and client logs name different connections")
        return found

    def check_tcp_bytes(self, variant, lport, port, payload):
        """While the client still holds its socket (local port `lport`,
        connected to `port`): with usmc on both sides the kernel's TCP byte
        counters stay tiny (handshake, doorbells); without, they carry the
        payload in both directions."""
        socks, raw = tcp_socket_bytes(lport, port)
        self.assertEqual(len(socks), 1, "expected one socket :%d -> :%d\n%s" %
                         (lport, port, raw))
        acked, received = socks[0]
        if variant == BOTH:
            limit = payload // 32
            self.assertLess(received, limit, "data went through TCP: %s" % raw)
            self.assertLess(acked, limit, "data went through TCP: %s" % raw)
        else:
            self.assertGreaterEqual(received, payload, raw)
            self.assertGreaterEqual(acked, payload, raw)
        return acked, received


def main():
    """SCRIPT BUILD SRC [--variants plain|usmc|all] [unittest args]."""
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit("usage: %s BUILD_DIR SOURCE_DIR [--variants plain|usmc|all] "
                 "[unittest args]" % sys.argv[0])
    CFG.build, CFG.src = os.path.abspath(args[0]), os.path.abspath(args[1])
    rest = args[2:]
    if rest[:1] == ["--variants"]:
        CFG.variants, rest = rest[1], rest[2:]
    if CFG.variants not in ("plain", "usmc", "all"):
        sys.exit("bad --variants %s" % CFG.variants)
    if os.environ.get("USMC_TEST_PLAIN_ONLY") == "1":
        if CFG.variants == "usmc":
            print("skipped: USMC_TEST_PLAIN_ONLY=1")
            sys.exit(SKIP_EXIT)
        CFG.variants = "plain"
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2)
