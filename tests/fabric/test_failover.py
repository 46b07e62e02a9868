#!/usr/bin/env python3
"""Two-host failover test for the usmc fabric link (SMC-R over libfabric).

Builds two namespace hosts joined by two veth links (scripts/netns.sh), runs
fabric_stream's receiver in usmcB and sender in usmcA over both links with
the tcp provider, takes link 1 down inside usmcA while the stream runs, then
brings it back. Checks: every byte arrived exactly once and in order (the
receiver compares each byte with a position-dependent pattern and both sides
agree on the checksum), one failover on each side, the link is re-added
after the interface comes back, and detection stayed within the bound.

Usage: test_failover.py --stream PATH --netns PATH [--bytes N] [--rate MBPS]
                        [--keepalive MS] [--wait busy|fd] [--side A|B]
                        [--link 1|2] [--keep]
Exits 77 (skipped) when not root. USMC_TEST_KEEP=1 keeps the namespaces.
"""
import argparse
import fcntl
import os
import subprocess
import sys
import threading
import time

LOCK = "/run/usmc-fabric-netns.lock"
A_ADDRS = "10.77.1.1,10.77.2.1"
B_ADDRS = "10.77.1.2,10.77.2.2"
OOB = "10.77.1.2:7470"


class Proc:
    """A process whose stdout lines are collected by a reader thread."""

    def __init__(self, name, argv, env):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pred, timeout):
        end = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = end - time.time()
                if left <= 0 or self.p.poll() is not None and not self._more():
                    return None
                self.cond.wait(min(left, 0.2))

    def _more(self):
        return self.t.is_alive()

    def finish(self, timeout):
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(5)
        return self.p.returncode

    def fields(self, prefix):
        """key=value pairs of the last line starting with prefix."""
        for line in reversed(self.lines):
            if line.startswith(prefix):
                return dict(kv.split("=", 1) for kv in line.split()[1:]
                            if "=" in kv)
        return None


def sh(*argv):
    subprocess.run(list(argv), check=True)


def run(args):
    env = dict(os.environ, USMC_FABRIC_ALLOW_TCP="1")
    common = ["--bytes", str(args.bytes), "--keepalive", str(args.keepalive),
              "--expect-links", "2", "--links-timeout", "20",
              "--wait", args.wait]
    recv = Proc("recv", ["ip", "netns", "exec", "usmcB", args.stream,
                         "--role", "recv", "--local", B_ADDRS, "--oob", OOB]
                + common, env)
    if not recv.wait_for(lambda l: l.startswith("LISTENING"), 10):
        print("receiver did not start:\n" + "\n".join(recv.lines))
        recv.finish(1)
        return 1
    send = Proc("send", ["ip", "netns", "exec", "usmcA", args.stream,
                         "--role", "send", "--local", A_ADDRS, "--oob", OOB,
                         "--rate", str(args.rate)] + common, env)
    quarter = args.bytes // 4
    ok = send.wait_for(lambda l: l.startswith("PROGRESS") and
                       int(l.split("=")[1]) >= quarter, 60)
    if not ok:
        print("stream did not get going")
    t_down = time.time_ns()
    sh(args.netns, "link", args.side, args.link, "down")
    time.sleep(args.down_s)
    t_up = time.time_ns()
    sh(args.netns, "link", args.side, args.link, "up")
    rc_send = send.finish(120)
    rc_recv = recv.finish(30)
    for p in (send, recv):
        print("---- %s (exit %s)" % (p.name, p.p.returncode))
        print("\n".join(p.lines))
    return check(send, recv, rc_send, rc_recv, t_down, t_up, args)


def check(send, recv, rc_send, rc_recv, t_down, t_up, args):
    errors = []
    s = send.fields("RESULT") or {}
    r = recv.fields("RESULT") or {}
    if rc_send != 0 or rc_recv != 0:
        errors.append("exit codes send=%s recv=%s" % (rc_send, rc_recv))
    for side, f in (("send", s), ("recv", r)):
        if f.get("bytes") != str(args.bytes):
            errors.append("%s: %s bytes, want %d" % (side, f.get("bytes"),
                                                     args.bytes))
        if f.get("failovers") != "1":
            errors.append("%s: failovers=%s, want 1" % (side,
                                                        f.get("failovers")))
        if f.get("links") != "2":
            errors.append("%s: %s links at the end, want 2" % (side,
                                                                f.get("links")))
        if f.get("protocol_errors") != "0":
            errors.append("%s: protocol errors" % side)
    if r.get("mismatches") != "0":
        errors.append("receiver saw %s wrong bytes" % r.get("mismatches"))
    if not s.get("checksum") or s.get("checksum") != r.get("checksum"):
        errors.append("checksums differ: %s vs %s" % (s.get("checksum"),
                                                      r.get("checksum")))
    detect = []
    for p in (send, recv):
        downs = [int(l.split("realtime_ns=")[1].split()[0]) for l in p.lines
                 if l.startswith("LINK_DOWN")]
        downs = [t for t in downs if t > t_down]
        if downs:
            detect.append((downs[0] - t_down) / 1e6)
    readd = [int(l.split("realtime_ns=")[1].split()[0]) for l in send.lines
             if l.startswith("LINK_UP link=%d" % (int(args.link) - 1))]
    readd = [t for t in readd if t > t_up]
    bound_ms = 2 * args.keepalive + 300
    if len(detect) != 2:
        errors.append("both sides must report the link down after %d" % t_down)
    elif min(detect) > bound_ms:
        errors.append("detection took %.0f ms (bound %d ms)" % (min(detect),
                                                                bound_ms))
    if not readd:
        errors.append("link %s was not re-added after the interface came up"
                      % args.link)
    print("RESULT detection_ms=%s readd_ms_after_up=%s reissued_writes=%s "
          "reissued_bytes=%s throughput_mbps=%s" % (
              ",".join("%.1f" % d for d in detect),
              "%.0f" % ((readd[0] - t_up) / 1e6) if readd else "none",
              s.get("reissued_writes"), s.get("reissued_bytes"),
              (send.fields("THROUGHPUT") or {}).get("mbps")))
    for e in errors:
        print("FAIL: " + e)
    print("PASS" if not errors else "FAILED")
    return 0 if not errors else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", required=True)
    ap.add_argument("--netns", required=True)
    ap.add_argument("--bytes", type=int, default=256 << 20)
    ap.add_argument("--rate", type=float, default=64.0, help="MB/s")
    ap.add_argument("--keepalive", type=int, default=200)
    ap.add_argument("--down-s", type=float, default=2.0)
    ap.add_argument("--wait", choices=["busy", "fd"], default="busy")
    ap.add_argument("--side", choices=["A", "B"], default="A",
                    help="namespace whose interface goes down (A sends)")
    ap.add_argument("--link", choices=["1", "2"], default="1",
                    help="link 1 carries the stream, link 2 is idle")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: the fabric failover test needs root "
              "(it builds network namespaces)")
        return 77
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sh(args.netns, "up")
        try:
            return run(args)
        finally:
            if not (args.keep or os.environ.get("USMC_TEST_KEEP") == "1"):
                sh(args.netns, "down")


if __name__ == "__main__":
    sys.exit(main())
