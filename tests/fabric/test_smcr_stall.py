#!/usr/bin/env python3
"""A cross-host peer that stops answering ends in a clean reset.

Two namespace hosts (scripts/netns.sh); a python3 echo server under usmc in
usmcB, a python3 client under usmc in usmcA, connection in mode RDMA (a
`remote` rule on both ends). After some verified round trips the server is
stopped with SIGSTOP: its kernel keeps the TCP connection alive, but its
progress thread no longer answers TEST_LINK, so the client's link group must
declare both links dead within keepalive + probe wait and reset the
connection (ECONNRESET, or EPIPE) instead of hanging, within the bound.

Usage: test_smcr_stall.py --usmc PATH --netns PATH
Exits 77 (skipped) when not root.
"""
import os
import signal
import subprocess
import sys
import time

from smcr_hosts import env_for, main

PORT = 7821
KEEPALIVE_MS = 300

SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.1.2", %d)); s.listen(1); print("LISTEN", flush=True)
c, _ = s.accept()
while True:
    d = c.recv(65536)
    if not d: break
    c.sendall(d)
""" % PORT

CLIENT = r"""
import os, socket, sys, time
c = socket.create_connection(("10.77.1.2", %d))
for i in range(200):
    msg = os.urandom(1000)
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += c.recv(len(msg) - len(got))
    assert got == msg, "echo mismatch"
print("ROUNDTRIPS ok", flush=True)
sys.stdin.readline()          # the test stops the server now
start = time.monotonic()
try:
    while time.monotonic() - start < 30:
        c.sendall(b"x" * 65536)   # fills the ring, then blocks
    print("NORESET", flush=True)
except OSError as e:
    print("RESET errno=%%d after=%%.2f" %% (e.errno, time.monotonic() - start),
          flush=True)
""" % PORT


def run(args):
    server = subprocess.Popen(
        ["nsenter", "--net=/run/netns/usmcB", args.usmc, "run", "--",
         "python3", "-c", SERVER],
        env=env_for("10.77.1.2,10.77.2.2", USMC_FABRIC_KEEPALIVE_MS=KEEPALIVE_MS),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = None
    try:
        while "LISTEN" not in (line := server.stdout.readline()):
            if not line:
                return "server did not start"
        client = subprocess.Popen(
            ["nsenter", "--net=/run/netns/usmcA", args.usmc, "run", "--",
             "python3", "-c", CLIENT],
            env=env_for("10.77.1.1,10.77.2.1",
                        USMC_FABRIC_KEEPALIVE_MS=KEEPALIVE_MS),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        log = []
        while True:
            line = client.stdout.readline()
            if not line:
                return "client ended early:\n" + "".join(log)
            log.append(line)
            if line.startswith("ROUNDTRIPS"):
                break
        if not any("mode=RDMA" in l for l in log):
            return "connection was not RDMA:\n" + "".join(log)
        time.sleep(1.0)  # let the second link come up
        # server.pid is nsenter's, which execs usmc, which execs python3.
        os.kill(server.pid, signal.SIGSTOP)
        client.stdin.write("\n")
        client.stdin.flush()
        out, _ = client.communicate(timeout=60)
        log.append(out)
        text = "".join(log)
        result = [l for l in out.splitlines() if l.startswith(("RESET",
                                                               "NORESET"))]
        if not result or not result[0].startswith("RESET"):
            return "no reset:\n" + text
        after = float(result[0].split("after=")[1])
        bound = 2 * (KEEPALIVE_MS + KEEPALIVE_MS) / 1000 + 3
        print(result[0], f"(bound {bound:.1f} s)")
        if after > bound:
            return f"reset after {after:.2f} s, bound {bound:.1f} s"
        return None
    finally:
        for p in (server, client):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main(run))
