#!/usr/bin/env python3
"""One TCP stream with an end-to-end check, for test_smcr.py (stdlib only).

  smcr_stream.py server --bind ADDR --port N
      Accepts one connection, reads until EOF while computing sha256 and the
      byte count, writes them back as one line "bytes=N sha256=HEX seg=..."
      and closes (seg: the first 8 hex digits of the sha256 of each 16 MiB
      segment, to tell where a difference starts). Prints LISTENING,
      ACCEPTED, RECEIVED.

  smcr_stream.py client --host ADDR --port N --bytes N [--rate MBPS]
                        [--seed S] [--hold]
      Sends BYTES of a deterministic pseudo-random stream (chunks of varying
      size cut at seeded offsets from a seeded 16 MiB pool), computing its
      sha256 while sending; prints "PROGRESS bytes=N" every 0.5 s, then
      "SENT bytes=N sha256=HEX". With --hold it then waits for a line on
      stdin (so the caller can inspect the live connection) before
      shutdown(SHUT_WR); reads the server's line and prints
      "OK bytes=N sha256=HEX mbps=X" (exit 0) or "MISMATCH ..." with the
      first 16 MiB segment that differs (exit 1).

Both roles exit 3 with "timeout (watchdog)" after --timeout seconds.
"""
import argparse
import hashlib
import os
import random
import signal
import socket
import sys
import time

POOL_BLOCK = 1 << 20
POOL_BLOCKS = 16


def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def watchdog(seconds):
    def fire(_sig, _frm):
        say("timeout (watchdog) after %ss" % seconds)
        os._exit(3)
    signal.signal(signal.SIGALRM, fire)
    signal.alarm(int(seconds))


SEGMENT = 16 << 20


class Hashes:
    """sha256 of the whole stream and of each SEGMENT bytes of it."""

    def __init__(self):
        self.total = 0
        self.h = hashlib.sha256()
        self.seg = hashlib.sha256()
        self.seg_bytes = 0
        self.segs = []

    def update(self, mv):
        self.h.update(mv)
        self.total += len(mv)
        while len(mv):
            take = min(len(mv), SEGMENT - self.seg_bytes)
            self.seg.update(mv[:take])
            self.seg_bytes += take
            mv = mv[take:]
            if self.seg_bytes == SEGMENT:
                self.segs.append(self.seg.hexdigest()[:8])
                self.seg = hashlib.sha256()
                self.seg_bytes = 0

    def line(self):
        segs = self.segs + ([self.seg.hexdigest()[:8]] if self.seg_bytes
                            else [])
        return "bytes=%d sha256=%s seg=%s" % (self.total, self.h.hexdigest(),
                                             ",".join(segs) or "-")


def first_difference(a, b):
    """Where two "... seg=x,y,z" lines start to differ, as text."""
    sa = dict(kv.split("=", 1) for kv in a.split() if "=" in kv).get("seg")
    sb = dict(kv.split("=", 1) for kv in b.split() if "=" in kv).get("seg")
    if not sa or not sb:
        return "unknown"
    la, lb = sa.split(","), sb.split(",")
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return "in bytes %d..%d (16 MiB segment %d)" % (
                i * SEGMENT, (i + 1) * SEGMENT - 1, i)
    return "after segment %d (lengths differ)" % min(len(la), len(lb))


def server(args):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.bind, args.port))
    ls.listen(4)
    say("LISTENING addr=%s port=%d" % ls.getsockname())
    conn, peer = ls.accept()
    ls.close()
    say("ACCEPTED peer=%s:%d" % peer)
    h = Hashes()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        h.update(view[:n])
    line = h.line()
    say("RECEIVED " + line)
    conn.sendall((line + "\n").encode())
    conn.close()
    return 0


def chunks(seed, nbytes):
    """The deterministic stream as a sequence of memoryviews."""
    rng = random.Random(seed)
    pool = [memoryview(rng.randbytes(POOL_BLOCK)) for _ in range(POOL_BLOCKS)]
    left = nbytes
    while left > 0:
        size = min(left, rng.randrange(1, POOL_BLOCK + 1))
        off = rng.randrange(0, POOL_BLOCK - size + 1)
        yield pool[rng.randrange(POOL_BLOCKS)][off:off + size]
        left -= size


def client(args):
    s = socket.create_connection((args.host, args.port), timeout=30)
    s.settimeout(None)
    say("CONNECTED local=%s:%d" % s.getsockname())
    h = Hashes()
    sent = 0
    rate = args.rate * 1e6 if args.rate > 0 else 0
    t0 = time.monotonic()
    next_report = t0 + 0.5
    for piece in chunks(args.seed, args.bytes):
        s.sendall(piece)
        h.update(piece)
        sent += len(piece)
        now = time.monotonic()
        if now >= next_report:
            say("PROGRESS bytes=%d" % sent)
            next_report = now + 0.5
        if rate:
            ahead = sent / rate - (now - t0)
            if ahead > 0:
                time.sleep(ahead)
    elapsed = time.monotonic() - t0
    full = h.line()
    want = " ".join(full.split()[:2])  # bytes=N sha256=HEX
    say("PROGRESS bytes=%d" % sent)
    say("SENT " + want + " mbps=%.1f" % (sent / 1e6 / max(elapsed, 1e-9)))
    if args.hold:
        sys.stdin.readline()
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        reply += b
    s.close()
    got = reply.decode(errors="replace").strip()
    if " ".join(got.split()[:2]) != want:
        say("MISMATCH sent: %s server: %s; first difference %s" % (
            want, " ".join(got.split()[:2]) or "(nothing)",
            first_difference(full, got)))
        say("SEGMENTS sent: %s" % full.split()[-1])
        say("SEGMENTS server: %s" % (got.split()[-1] if got else "-"))
        return 1
    say("OK %s mbps=%.1f" % (want, sent / 1e6 / max(elapsed, 1e-9)))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bytes", type=int, default=256 << 20)
    ap.add_argument("--rate", type=float, default=0, help="MB/s, 0 = no limit")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--timeout", type=float, default=240)
    args = ap.parse_args()
    watchdog(args.timeout)
    return server(args) if args.role == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
