#!/usr/bin/env python3
"""The plain-socket test programs (tests/tools) against each other: server
models, client I/O calls and readiness APIs, address families, edge cases and
process/fd operations. Each scenario runs plain/plain and usmc/usmc (see
harness.py for the command line)."""

import subprocess
import time

from harness import (Case, main, pair_variants, size, tool,
                     variant_name)

MODELS = ["blocking", "thread", "fork", "exec", "epoll-lt", "epoll-et",
          "oneshot", "poll", "select"]
PROTOS = ["echo", "banner", "halfclose", "http"]


class ToolCase(Case):
    def server(self, v, args, name="server"):
        return self.start_listener(name, [tool("tt_server")] + args,
                                   usmc=v[1])

    def client(self, v, port, args, name="client", **kw):
        return self.start(name, [tool("tt_client"), "--port", str(port)] +
                          args, usmc=v[0], **kw)

    def transfer(self, v, server_args, client_args, conns):
        """Runs one server and one client process; compares what the client
        sent with what the server received, checks the logged modes."""
        srv, port = self.server(v, server_args + ["--conns", str(conns)])
        cli = self.client(v, port, client_args)
        c = cli.result(timeout=120)
        s = srv.result(timeout=60)
        self.assertEqual(int(c["conns"]), conns, c)
        self.assertEqual((s["bytes"], s["sum"]), (c["bytes"], c["sum"]),
                         "server received other bytes than the client sent")
        self.check_modes(v, port, srv, [cli], conns=conns)
        return c, s


class ServerModels(ToolCase):
    """Every server model x every protocol, with concurrent connections."""

    def test_models_and_protocols(self):
        nbytes = str(size(1 << 20, 256 << 10))
        for v in pair_variants():
            for model in MODELS:
                for proto in PROTOS:
                    with self.subTest(variant=variant_name(v), model=model,
                                      proto=proto):
                        par = "1" if model == "blocking" else "3"
                        self.transfer(
                            v, ["--model", model, "--proto", proto],
                            ["--proto", proto, "--bytes", nbytes, "--conns",
                             "2", "--parallel", par, "--requests", "3"],
                            conns=2 * int(par))


class ClientIo(ToolCase):
    """Client readiness APIs and send/receive calls (echo, byte-exact)."""

    def test_readiness(self):
        nbytes = str(size(4 << 20, 1 << 20))
        ios = ["threads", "lockstep", "poll", "select", "epoll", "epoll2",
               "epollpipe"]
        servers = ["epoll-et", "epoll-lt", "oneshot", "poll", "select",
                   "thread", "blocking"]
        for v in pair_variants():
            for io, model in zip(ios, servers):
                with self.subTest(variant=variant_name(v), io=io):
                    self.transfer(v, ["--model", model],
                                  ["--io", io, "--bytes", nbytes], conns=1)

    def test_send_recv_calls(self):
        nbytes = str(size((2 << 20) + 7, (256 << 10) + 7))
        sends = ["write", "send", "writev", "sendmsg", "sendfile"]
        recvs = ["read", "recv", "readv", "recvmsg", "waitall"]
        for v in pair_variants():
            for i, s in enumerate(sends):
                for j, r in enumerate(recvs):
                    io = ["threads", "poll", "epoll"][(i + j) % 3]
                    if r == "waitall" and io != "threads":
                        io = "threads"  # MSG_WAITALL blocks by design
                    with self.subTest(variant=variant_name(v), send=s, recv=r,
                                      io=io):
                        self.transfer(v, ["--model", "poll"],
                                      ["--send", s, "--recv", r, "--io", io,
                                       "--bytes", nbytes], conns=1)

    def test_nonblocking_connect(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                c, _ = self.transfer(v, ["--model", "epoll-et"],
                                     ["--nbconnect", "--parallel", "2",
                                      "--conns", "3"], conns=6)
                self.assertIn(c["nbconnect"], ("einprogress", "immediate"))

    def test_tcp_counters(self):
        """Independent proof of the data path: the kernel's TCP byte
        counters of a held connection (ss)."""
        payload = size(16 << 20, 4 << 20)
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                srv, port = self.server(v, ["--model", "epoll-lt"])
                cli = self.client(v, port, ["--bytes", str(payload),
                                            "--hold"], stdin=True)
                line = cli.expect("OK tt_client", timeout=120)
                lport = int(line.rsplit("lport=", 1)[1])
                self.assertNotEqual(lport, 0, line)
                self.check_tcp_bytes(v, lport, port, payload)
                cli.close_stdin()
                cli.result()
                s = srv.result()
                self.assertEqual(int(s["bytes"]), payload)
                self.check_modes(v, port, srv, [cli], conns=1)


class Families(ToolCase):
    """IPv4, IPv6, dual-stack with v4-mapped peers (banner: the client also
    checks the address the server saw against its getsockname)."""

    CASES = [("127.0.0.1", "0", "127.0.0.1", "v4"),
             ("::1", "1", "::1", "v6"),
             ("::", "0", "127.0.0.1", "mapped"),
             ("::", "0", "::ffff:127.0.0.1", "mapped"),
             ("::", "0", "::1", "v6")]

    def test_families(self):
        for v in pair_variants():
            for bind, v6only, host, kind in self.CASES:
                for proto in ("banner", "echo"):
                    with self.subTest(variant=variant_name(v), bind=bind,
                                      host=host, proto=proto):
                        _, s = self.transfer(
                            v, ["--bind", bind, "--v6only", v6only,
                                "--model", "epoll-lt", "--proto", proto],
                            ["--host", host, "--proto", proto, "--bytes",
                             "100000"], conns=1)
                        self.assertEqual(s["kinds"], kind)


class EdgeCases(ToolCase):
    """Close/reset/kill semantics, ioctls, peek (tt_edge)."""

    def edge(self, v, case, extra=()):
        srv, port = self.start_listener(
            "server", [tool("tt_edge"), "--role", "server", "--case", case] +
            list(extra), usmc=v[1])
        cli = self.start("client", [tool("tt_edge"), "--role", "client",
                                    "--case", case, "--port", str(port)] +
                         list(extra), usmc=v[0])
        return srv, cli, port

    def test_cases(self):
        for v in pair_variants():
            for case in ("reset", "epipe", "ioctl", "peek"):
                with self.subTest(variant=variant_name(v), case=case):
                    srv, cli, port = self.edge(v, case)
                    c = cli.result()
                    srv.result()
                    self.check_modes(v, port, srv, [cli], conns=1)
                    if case == "reset":
                        self.assertEqual(c["got"], "ECONNRESET")

    def test_killed_peer(self):
        """SIGKILL one side; the other, blocked in recv/poll/epoll/send, must
        see EOF/ECONNRESET/EPIPE promptly."""
        for v in pair_variants():
            for victim in ("server", "client"):
                for wait in ("recv", "poll", "epoll", "send"):
                    with self.subTest(variant=variant_name(v), victim=victim,
                                      wait=wait):
                        self.killed(v, victim, wait)

    def killed(self, v, victim, wait):
        extra = ["--victim", victim, "--wait", wait]
        srv, cli, port = self.edge(v, "killed", extra)
        srv.expect("READY")
        cli.expect("READY")
        self.check_modes(v, port, srv, [cli], conns=1)
        dead, survivor = (srv, cli) if victim == "server" else (cli, srv)
        self.wait_sleeping(survivor)  # blocked, and not spinning
        t0 = time.monotonic()
        dead.kill()
        r = survivor.result(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 3.0, "survivor took %.1fs" % elapsed)
        self.assertIn(r["got"], ("EOF", "ECONNRESET", "EPIPE"))

    def test_refused(self):
        from harness import free_port
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                port = free_port()
                cli = self.start("client", [tool("tt_edge"), "--role",
                                            "client", "--case", "refused",
                                            "--port", str(port)], usmc=v[0])
                cli.result()


class FdOps(ToolCase):
    """dup/dup2/dup3/F_DUPFD_CLOEXEC/close_range, fork, EINTR/SA_RESTART."""

    def test_fdops(self):
        nbytes = str(size(2 << 20, 512 << 10))
        for v in pair_variants():
            for case, conns in (("dup", 1), ("fork", 2), ("eintr", 1)):
                with self.subTest(variant=variant_name(v), case=case):
                    srv, port = self.server(v, ["--model", "thread",
                                                "--conns", str(conns)])
                    cli = self.start("client", [tool("tt_fdops"), "--case",
                                                case, "--port", str(port),
                                                "--bytes", nbytes], usmc=v[0])
                    cli.result()
                    srv.result()
                    self.check_modes(v, port, srv, [cli], conns=conns)


class MiscCalls(ToolCase):
    """TCP_NODELAY/TCP_CORK/MSG_MORE, SO_RCVBUF/SO_SNDBUF, sendmmsg/recvmmsg,
    ppoll/pselect/epoll_pwait/epoll_pwait2 and glibc's fortified entry points
    (tt_misc)."""

    FORTIFIED = ["__read_chk", "__recv_chk", "__recvfrom_chk", "__poll_chk",
                 "__ppoll_chk"]

    def test_fortified_symbols(self):
        """tt_misc really calls the __*_chk entry points (else the test below
        would not cover them)."""
        out = subprocess.run(["nm", "-D", "--undefined-only", tool("tt_misc")],
                             capture_output=True, text=True, check=True).stdout
        for sym in self.FORTIFIED:
            self.assertRegex(out, r"\b%s\b" % sym, "tt_misc does not import "
                             "%s (built without optimization?)" % sym)

    def test_misc_calls(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                srv, port = self.server(v, ["--model", "thread", "--conns",
                                            "1"])
                cli = self.start("client", [tool("tt_misc"), "--port",
                                            str(port)], usmc=v[0])
                c = cli.result()
                s = srv.result()
                self.assertEqual((s["bytes"], s["sum"]), (c["bytes"], c["sum"]))
                self.check_modes(v, port, srv, [cli], conns=1)


if __name__ == "__main__":
    main()
