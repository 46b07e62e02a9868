#!/usr/bin/env python3
"""A cross-host connection belongs to the process that set it up.

Two namespace hosts (scripts/netns.sh); a python3 server under usmc in usmcB
echoes one message over a cross-host (RDMA) connection, then forks a child
that keeps its copy of the socket for 3 s (as a background save does) and
closes the connection in the parent. The client in usmcA must read the echo
and the farewell byte for byte and then EOF at once: the child can neither
use nor hold a cross-host connection (its link group is the parent's), so the
parent's close ends it, where waiting for the child would leave the peer
without EOF for good (the parent's side would never be closed).

Usage: test_smcr_fork.py --usmc PATH --netns PATH
Exits 77 (skipped) when not root.
"""
import subprocess
import sys

from smcr_hosts import env_for, main

PORT = 7831

SERVER = r"""
import os, socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.1.2", %d)); s.listen(1); print("LISTEN", flush=True)
c, _ = s.accept()
d = c.recv(100); c.sendall(d)
if os.fork() == 0:
    time.sleep(3); os._exit(0)      # a child that keeps its copy of the fd
c.sendall(b"bye"); c.close()
os.wait()
print("SERVER DONE", flush=True)
""" % PORT

CLIENT = r"""
import socket, time
c = socket.create_connection(("10.77.1.2", %d)); c.sendall(b"hello")
got = b""
t0 = time.monotonic()
while True:
    d = c.recv(100)
    if not d: break
    got += d
print("GOT %%r EOF after %%.2f" %% (got, time.monotonic() - t0), flush=True)
""" % PORT


def run(args):
    server = subprocess.Popen(
        ["nsenter", "--net=/run/netns/usmcB", args.usmc, "run", "--",
         "python3", "-c", SERVER], env=env_for("10.77.1.2"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while "LISTEN" not in (line := server.stdout.readline()):
            if not line:
                return "server did not start"
        client = subprocess.run(
            ["nsenter", "--net=/run/netns/usmcA", args.usmc, "run", "--",
             "python3", "-c", CLIENT], env=env_for("10.77.1.1"),
            capture_output=True, text=True, timeout=30)
        out = client.stdout + client.stderr
        if "mode=RDMA" not in out:
            return "connection was not RDMA:\n" + out
        got = [l for l in out.splitlines() if l.startswith("GOT")]
        print(got[0] if got else out)
        if not got or not got[0].startswith("GOT b'hellobye' EOF after"):
            return "wrong data or no EOF:\n" + out
        if float(got[0].split("after ")[1]) > 2.0:
            return "EOF waited for the forked child"
        sout, _ = server.communicate(timeout=30)
        if "SERVER DONE" not in sout or server.returncode != 0:
            return "server failed:\n" + sout
        return None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main(run))
