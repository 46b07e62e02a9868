#!/usr/bin/env python3
"""Small stdlib clients/servers run as real programs (plain or under
`usmc run`) by test_apps.py. Each prints one result line, "OK ..." or
"FAIL ...", and exits non-zero on any mismatch.

  apps_clients.py memcached PORT          set/get/delete of several sizes
  apps_clients.py fetch URL SHA256 COUNT  urllib GETs, body sha256 checked
  apps_clients.py echo-server             asyncio echo server (LISTEN port=N)
  apps_clients.py echo-client PORT NBYTES CONNS
  apps_clients.py resp-hold PORT NBYTES   redis SET+GET, then holds the
                                          connection until stdin EOF
"""
import asyncio
import hashlib
import random
import signal
import socket
import sys
import urllib.request


def fail(msg):
    print("FAIL %s: %s" % (sys.argv[1], msg), flush=True)
    sys.exit(1)


def blob(seed, n):
    return random.Random(seed).randbytes(n)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            fail("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_line(sock):
    line = bytearray()
    while not line.endswith(b"\r\n"):
        c = sock.recv(1)
        if not c:
            fail("EOF in a line")
        line += c
    return bytes(line[:-2])


def memcached(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    total = 0
    for i, n in enumerate((1, 100, 4096, 100000, 900000)):
        key = b"usmc_key_%d" % i
        val = blob(i, n)
        s.sendall(b"set %s 7 0 %d\r\n%s\r\n" % (key, n, val))
        if recv_line(s) != b"STORED":
            fail("set %s not stored" % key)
        s.sendall(b"get %s\r\n" % key)
        head = recv_line(s).split()
        if head[:3] != [b"VALUE", key, b"7"] or int(head[3]) != n:
            fail("bad VALUE line %r" % head)
        data = recv_exact(s, n + 2)
        if data[:-2] != val or recv_line(s) != b"END":
            fail("value of %s differs" % key)
        total += n
    s.sendall(b"delete usmc_key_0\r\nget usmc_key_0\r\n")
    if recv_line(s) != b"DELETED" or recv_line(s) != b"END":
        fail("delete/get miss failed")
    s.close()
    print("OK memcached bytes=%d" % total)


def fetch(url, sha, count):
    for i in range(int(count)):
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read()
            if r.status != 200:
                fail("status %d" % r.status)
        got = hashlib.sha256(body).hexdigest()
        if got != sha:
            fail("request %d: sha256 %s, want %s" % (i, got, sha))
    print("OK fetch count=%s bytes=%d" % (count, len(body)))


async def echo_server():
    done = asyncio.Event()
    stats = {"conns": 0, "bytes": 0}

    async def handle(reader, writer):
        while data := await reader.read(65536):
            stats["bytes"] += len(data)
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        stats["conns"] += 1

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("LISTEN port=%d" % server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    print("OK echo-server conns=%d bytes=%d" % (stats["conns"],
                                                stats["bytes"]), flush=True)


async def echo_one(port, n, seed):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = blob(seed, n)

    async def send():
        for off in range(0, n, 50000):
            writer.write(data[off:off + 50000])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = await reader.read(-1)  # until EOF
    await sender
    writer.close()
    if got != data:
        fail("connection %d: echo differs (%d of %d bytes)" % (seed, len(got),
                                                               n))
    return n


async def echo_client(port, n, conns):
    sizes = await asyncio.gather(*(echo_one(int(port), int(n), i)
                                   for i in range(int(conns))))
    print("OK echo-client conns=%d bytes=%d" % (len(sizes), sum(sizes)))


def resp_hold(port, n):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    val = blob(99, int(n))
    s.sendall(b"*3\r\n$3\r\nSET\r\n$8\r\nusmc:big\r\n$%d\r\n%s\r\n" %
              (len(val), val))
    if recv_line(s) != b"+OK":
        fail("SET failed")
    s.sendall(b"*2\r\n$3\r\nGET\r\n$8\r\nusmc:big\r\n")
    if recv_line(s) != b"$%d" % len(val):
        fail("bad GET header")
    if recv_exact(s, len(val) + 2)[:-2] != val:
        fail("GET returned other bytes")
    print("OK resp-hold bytes=%d lport=%d" % (len(val), s.getsockname()[1]),
          flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
    s.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    signal.alarm(120)  # watchdog: never hang
    if cmd == "memcached":
        memcached(*args)
    elif cmd == "fetch":
        fetch(*args)
    elif cmd == "echo-server":
        asyncio.run(echo_server())
    elif cmd == "echo-client":
        asyncio.run(echo_client(*args))
    elif cmd == "resp-hold":
        resp_hold(*args)
    else:
        fail("unknown command")


if __name__ == "__main__":
    main()
