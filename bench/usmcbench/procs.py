"""Starting, watching and stopping the processes of one benchmark step.

Every process is started by us, tracked in Env.live and ended by its pid
(SIGTERM, then SIGKILL of it and of its own children, e.g. nginx workers).
"""

import json
import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import time

LIB_MISSING = "n/a (libusmc.so not built)"
# With pinning (the default on 2+ CPUs), a server and its client each get a
# core of their own: a blocking round trip then always crosses cores, instead
# of sometimes sharing one (which makes TCP's RTT bimodal, 7 or 70 us here).
SERVER_CPU, CLIENT_CPU = 0, 1


class StepError(Exception):
    """One benchmark step failed; the message goes into the table."""


def which(name):
    """Like shutil.which, but also looks in the sbin directories."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(name, path=path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_listening(port):
    """Whether some socket listens on TCP `port` (per /proc/net/tcp*)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and local_port == port:  # 0A: LISTEN
                return True
    return False


def unix_listening(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def json_line(text):
    """The last line of `text` that is a JSON object."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise StepError("no JSON result in the output")


def tail(path_or_text, lines=3, from_file=True):
    text = path_or_text
    if from_file:
        try:
            with open(path_or_text, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
    kept = [l.strip() for l in text.splitlines() if l.strip()][-lines:]
    return " | ".join(kept)[-300:]


def children_of(pid):
    """Pids whose parent is `pid` (to end nginx workers with their master)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


class Env:
    """Where the binaries are, and how to put a command under usmc."""

    def __init__(self, build_dir, tmpdir, quick, step_timeout, pin):
        self.build_dir = os.path.abspath(build_dir)
        self.taskset = which("taskset") if pin else None
        self.tmpdir = tmpdir
        self.quick = quick
        self.step_timeout = step_timeout
        self.lib = os.path.join(self.build_dir, "src/preload/libusmc.so")
        self.cli = os.path.join(self.build_dir, "src/cli/usmc")
        self.usmc_note = None if os.path.exists(self.lib) else LIB_MISSING
        self.live = []
        self.serial = 0

    def usmc_how(self):
        if self.usmc_note:
            return self.usmc_note
        if os.access(self.cli, os.X_OK):
            return f"{os.path.relpath(self.cli)} run --"
        return f"LD_PRELOAD={os.path.relpath(self.lib)} (usmc CLI not built)"

    def bench_bin(self, name):
        return os.path.join(self.build_dir, "bench", name)

    def wrap(self, argv, usmc, cpu):
        """(argv, env) that run `argv` on `cpu`, plainly or under usmc."""
        penv = None
        if usmc and os.access(self.cli, os.X_OK):
            argv = [self.cli, "run", "--"] + argv
        elif usmc:
            penv = dict(os.environ, LD_PRELOAD=self.lib)
        if self.taskset and cpu is not None:
            argv = [self.taskset, "-c", str(cpu)] + argv
        return argv, penv

    def log_path(self, name):
        self.serial += 1
        return os.path.join(self.tmpdir, f"{self.serial:03d}.{name}.log")

    def start(self, argv, usmc, name, pipe_stdout=False, cpu=None):
        argv, penv = self.wrap(argv, usmc, cpu)
        log = self.log_path(name)
        with open(log, "wb") as logf:
            out = subprocess.PIPE if pipe_stdout else logf
            proc = subprocess.Popen(argv, stdout=out, stderr=logf,
                                    stdin=subprocess.DEVNULL, env=penv)
        proc.log = log
        self.live.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, grace=3.0):
        if proc.poll() is None:
            kids = children_of(proc.pid)
            proc.send_signal(sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                for pid in [proc.pid] + kids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self):
        for proc in list(self.live):
            self.stop(proc, grace=1.0)

    def run(self, argv, usmc, name, timeout, cpu=CLIENT_CPU):
        """Runs a client to completion; returns its stdout."""
        argv, penv = self.wrap(argv, usmc, cpu)
        log = self.log_path(name)
        with open(log, "wb") as logf:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=logf,
                                    stdin=subprocess.DEVNULL, env=penv)
            self.live.append(proc)
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop(proc, signal.SIGKILL)
                raise StepError(f"{name}: no result after {timeout:.0f} s")
            finally:
                if proc in self.live:
                    self.live.remove(proc)
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            why = tail(log) or tail(text, from_file=False)
            raise StepError(f"{name} exited {proc.returncode}: {why}")
        return text


class Server:
    """A server process for one step: started, awaited ready, stopped.

    ready is "line" (the program prints READY <port> <pid>), ("tcp", port)
    or ("unix", path).
    """

    def __init__(self, env, argv, usmc, name, ready="line", cpu=SERVER_CPU):
        self.env, self.argv, self.usmc, self.name = env, argv, usmc, name
        self.ready, self.cpu = ready, cpu
        self.port = self.pid = 0
        self.proc = None

    def __enter__(self):
        self.proc = self.env.start(self.argv, self.usmc, self.name,
                                   self.ready == "line", self.cpu)
        try:
            self._await_ready(min(10.0, self.env.step_timeout))
        except BaseException:
            self.env.stop(self.proc)
            raise
        return self

    def __exit__(self, *exc):
        self.env.stop(self.proc)

    def _dead(self):
        why = tail(self.proc.log)
        return StepError(f"{self.name} exited {self.proc.returncode}: {why}")

    def _await_ready(self, timeout):
        if self.ready == "line":
            self._await_line(timeout)
            return
        kind, where = self.ready
        check = tcp_listening if kind == "tcp" else unix_listening
        deadline = time.monotonic() + timeout
        while not check(where):
            if self.proc.poll() is not None:
                raise self._dead()
            if time.monotonic() > deadline:
                raise StepError(f"{self.name}: not listening after {timeout} s")
            time.sleep(0.02)
        self.pid = self.proc.pid

    def _await_line(self, timeout):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            self._read_ready(sel, timeout)

    def _read_ready(self, sel, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"READY "):  # other lines are not ours
                    fields = line.split()
                    self.port, self.pid = int(fields[1]), int(fields[2])
                    return
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise StepError(f"{self.name}: no READY line after {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.proc.wait()
                raise self._dead()
            buf += chunk

    def finish(self, timeout):
        """Waits for a server that ends by itself; an error if it fails."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise StepError(f"{self.name}: still running {timeout} s after "
                            "its client finished")
        if self.proc.returncode != 0:
            raise self._dead()
