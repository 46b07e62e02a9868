#!/usr/bin/env python3
"""A hostile CLC peer (never run under usmc): it looks like a usmc peer from
the outside and then misbehaves in the handshake, so the tests can check that
the usmc side declines or falls back without a crash, a hang, or a lost byte.

  evil_peer.py server MODE
      Listens on 127.0.0.1 (prints "LISTEN port=N") and binds the registry
      name a usmc listener would (@usmc.L.4.127.0.0.1.PORT), so a usmc client
      sends a Proposal. It answers per MODE, then consumes any CLC message
      the client sends (e.g. a Decline) and echoes all application data.
  evil_peer.py client MODE PORT NBYTES EXPECT
      Connects with a marked SYN (IP_TOS 0xAC, as a usmc client does), sends
      a bad handshake per MODE, then NBYTES of application data. EXPECT:
        decline : the server answers with a CLC Decline and then echoes
                  exactly the application data (garbage, badversion); for
                  stall/badlength, where no resync is possible, any first
                  answer (decline, data, EOF, reset) is accepted;
        echo    : the server is plain and echoes everything, the bad handshake
                  bytes included, byte for byte.

MODEs: garbage (well-framed message with a garbage body and trailer),
badversion (version nibble 15), badlength (length 0xFFFF), stall (server:
never answer; client: send half a header, then wait for the server).
CLC framing (RFC 7609): eyecatcher[4] type be16-length version ... trailer[4].
"""
import random
import signal
import socket
import struct
import sys

SMCD = bytes([0xE2, 0xD4, 0xC3, 0xC4])
SMCR = bytes([0xE2, 0xD4, 0xC3, 0xD9])
PROPOSAL, ACCEPT, CONFIRM, DECLINE = 1, 2, 3, 4


def fail(msg):
    print("FAIL evil_peer: %s" % msg, flush=True)
    sys.exit(1)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            fail("EOF after %d of %d bytes" % (len(buf), n))
        buf += c
    return buf


def bad_message(mode, ctype):
    """A CLC message of type `ctype` broken as `mode` says."""
    body = random.Random(7).randbytes(40)
    if mode == "badlength":
        return SMCD + struct.pack(">BHB", ctype, 0xFFFF, 0x20) + body
    version = 0xF0 if mode == "badversion" else 0x20
    length = 8 + len(body) + 4
    trailer = SMCD if mode == "badversion" else b"JUNK"
    return SMCD + struct.pack(">BHB", ctype, length, version) + body + trailer


def read_clc(s):
    """If the stream starts with a CLC eyecatcher, consumes one message and
    returns its type; otherwise returns None and consumes nothing."""
    head = s.recv(8, socket.MSG_PEEK | socket.MSG_WAITALL)
    if len(head) < 4 or head[:4] not in (SMCD, SMCR):
        return None
    if len(head) < 8:
        fail("truncated CLC header %r" % head)
    ctype, length = head[4], struct.unpack(">H", head[5:7])[0]
    if not 12 <= length <= 1024:
        fail("CLC message with length %d" % length)
    recv_exact(s, length)
    return ctype


def echo(s):
    n = 0
    while data := s.recv(65536):
        s.sendall(data)
        n += len(data)
    return n


def server(mode):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    port = ls.getsockname()[1]
    reg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reg.bind("\0usmc.L.4.127.0.0.1.%d" % port)
    print("LISTEN port=%d" % port, flush=True)
    s, _ = ls.accept()
    got = read_clc(s)
    if got is not None and got != PROPOSAL:
        fail("first CLC message has type %d, not a Proposal" % got)
    if got == PROPOSAL and mode != "stall":
        s.sendall(bad_message(mode, ACCEPT))
    after = []
    try:
        while (t := read_clc(s)) is not None:
            after.append(t)
    except ConnectionResetError:
        after.append("reset")
    if got == PROPOSAL and any(t not in (DECLINE, "reset") for t in after):
        fail("client sent CLC types %s after a bad Accept" % after)
    try:
        n = echo(s)
    except ConnectionResetError:
        n = "reset"
    print("OK evil_peer server proposal=%s then=%s echoed=%s" %
          (got == PROPOSAL, ",".join(map(str, after)) or "-", n), flush=True)


def marked_connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xAC)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0)
    return s


def client(mode, port, nbytes, expect):
    s = marked_connect(int(port))
    bad = bad_message(mode, PROPOSAL)
    if mode == "stall":
        bad = bad[:5]
    s.sendall(bad)
    print("SENT", flush=True)
    data = random.Random(3).randbytes(int(nbytes))
    if expect == "echo":  # a plain server: everything comes back
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        back = recv_exact(s, len(bad) + len(data))
        if back != bad + data or s.recv(1):
            fail("the plain server did not echo the stream byte-exact")
        print("OK evil_peer client echoed=%d" % len(back), flush=True)
        return
    if mode in ("stall", "badlength"):  # no way to resynchronise: any answer
        print("OK evil_peer client outcome=%s" % first_answer(s), flush=True)
        return
    try:
        t = read_clc(s)
    except ConnectionResetError:
        fail("reset instead of a Decline for a well-framed bad Proposal")
    if t != DECLINE:
        fail("answered a bad Proposal with %s, not a Decline" % t)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    back = recv_exact(s, len(data))
    if back != data or s.recv(1):
        fail("application data after the decline was not echoed exactly")
    print("OK evil_peer client outcome=decline echoed=%d" % len(back),
          flush=True)


def first_answer(s):
    """What the usmc server did first: decline, data, eof or reset."""
    try:
        head = s.recv(64)
    except ConnectionResetError:
        return "reset"
    if not head:
        return "eof"
    return "decline" if head[:4] in (SMCD, SMCR) and head[4] == DECLINE \
        else "data"


def main():
    signal.alarm(60)  # watchdog: never hang
    if sys.argv[1] == "server":
        server(sys.argv[2])
    else:
        client(*sys.argv[2:])


if __name__ == "__main__":
    main()
