#!/usr/bin/env python3
"""A plain-socket peer for test_stats.py (python3 stdlib; runs plainly or
under `usmc run`). Exact byte counts, connections held open on demand.

  stats_peer.py server [--host H] [--port P] [--fork]
      Prints "LISTEN port=N". Per connection (a thread, or a forked child
      with --fork): reads the request line "SEND n RECV m\\n", then n bytes,
      answers m bytes, then reads (and counts) until EOF and prints
      "CLOSED peer=PORT received=R sent=S".
  stats_peer.py client --port P [--host H] [--conns K] [--send N] [--recv M]
                       [--stream]
      Makes K connections, each sending the request and N bytes and reading
      M bytes, keeps them open and prints
      "READY ports=P1,P2 sent=S received=R" (per connection). Then, with
      --stream, keeps sending on the last connection until killed; else
      waits for EOF on stdin, closes and prints "OK".
"""

import argparse
import os
import socket
import sys
import threading


def recv_exact(s, n):
    got = 0
    while got < n:
        chunk = s.recv(min(65536, n - got))
        if not chunk:
            raise EOFError("short read: %d of %d" % (got, n))
        got += len(chunk)
    return got


def read_line(s):
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            raise EOFError("no request line")
        line += c
    return line


def serve(conn, peer_port):
    received = sent = 0
    try:
        line = read_line(conn)
        received += len(line)
        _, n, _, m = line.split()
        received += recv_exact(conn, int(n))
        conn.sendall(b"r" * int(m))
        sent += int(m)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += len(chunk)
    except (OSError, EOFError):
        pass
    conn.close()
    print("CLOSED peer=%d received=%d sent=%d" % (peer_port, received, sent),
          flush=True)


def server(a):
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(64)
    print("LISTEN port=%d" % ls.getsockname()[1], flush=True)
    while True:
        conn, addr = ls.accept()
        if a.fork:
            if os.fork() == 0:
                ls.close()
                serve(conn, addr[1])
                os._exit(0)
            conn.close()
        else:
            threading.Thread(target=serve, args=(conn, addr[1]),
                             daemon=True).start()


def client(a):
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    socks, ports = [], []
    for _ in range(a.conns):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.connect((a.host, a.port))
        req = b"SEND %d RECV %d\n" % (a.send, a.recv)
        s.sendall(req + b"s" * a.send)
        recv_exact(s, a.recv)
        socks.append(s)
        ports.append(str(s.getsockname()[1]))
    req_len = len(b"SEND %d RECV %d\n" % (a.send, a.recv))
    print("READY ports=%s sent=%d received=%d" %
          (",".join(ports), req_len + a.send, a.recv), flush=True)
    if a.stream:
        block = b"x" * 65536
        while True:
            socks[-1].sendall(block)
    sys.stdin.read()
    for s in socks:
        s.close()
    print("OK", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fork", action="store_true")
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--recv", type=int, default=0)
    p.add_argument("--stream", action="store_true")
    a = p.parse_args()
    server(a) if a.role == "server" else client(a)


if __name__ == "__main__":
    main()
