#!/usr/bin/env python3
"""The four-way matrix: client with/without usmc x server with/without usmc,
byte-exact, for client-first protocols (redis, HTTP) and a server-first one
(the tt banner protocol), with the mode each usmc side logged checked: SHM
only when both sides run under usmc, TCP with a reason otherwise. Also the
rules (USMC_RULES) turning acceleration off for one side."""

import os

from harness import (CLIENT_ONLY, SERVER_ONLY, CFG, Case, free_port, main,
                     matrix_variants, size, tool, variant_name)

# The reasons a usmc side may give when the other side is plain.
REASONS = {CLIENT_ONLY: {"client": {"NOLISTENER"}},
           SERVER_ONLY: {"server": {"PEERNOSMC"}}}


def redis_server_argv(tmp, port):
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", tmp,
            "--protected-mode", "no", "--daemonize", "no",
            "--logfile", os.path.join(tmp, "redis.log")]


class Matrix(Case):
    def tools_pair(self, v, server_args, client_args, conns):
        srv, port = self.start_listener(
            "server", [tool("tt_server"), "--conns", str(conns)] + server_args,
            usmc=v[1])
        cli = self.start("client", [tool("tt_client"), "--port", str(port)] +
                         client_args, usmc=v[0])
        c = cli.result(timeout=120)
        s = srv.result()
        self.assertEqual((s["bytes"], s["sum"]), (c["bytes"], c["sum"]))
        self.check_modes(v, port, srv, [cli], conns=conns,
                         reasons=REASONS.get(v))

    def test_banner_server_first(self):
        """Server-first: the server writes a greeting before reading."""
        nbytes = str(size(2 << 20, 256 << 10))
        for v in matrix_variants():
            for model in ("blocking", "epoll-et", "fork"):
                with self.subTest(variant=variant_name(v), model=model):
                    self.tools_pair(v, ["--proto", "banner", "--model", model],
                                    ["--proto", "banner", "--bytes", nbytes,
                                     "--conns", "3"], conns=3)

    def test_http_client_first(self):
        nbytes = str(size(1 << 20, 200000))
        for v in matrix_variants():
            with self.subTest(variant=variant_name(v)):
                self.tools_pair(v, ["--proto", "http", "--model", "thread"],
                                ["--proto", "http", "--bytes", nbytes,
                                 "--requests", "4", "--conns", "2",
                                 "--parallel", "2"], conns=4)

    def test_redis_client_first(self):
        for v in matrix_variants():
            with self.subTest(variant=variant_name(v)):
                self.redis(v)

    def redis(self, v):
        port = free_port()
        srv = self.start("redis-server", redis_server_argv(self.tmp, port),
                         usmc=v[1])
        self.wait_listen(srv, port, usmc=v[1])
        value = os.urandom(size(1 << 20, 256 << 10))
        path = os.path.join(self.tmp, "value.bin")
        with open(path, "wb") as f:
            f.write(value)
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        runs = [self.run_cmd("set", cli + ["-x", "SET", "big"], usmc=v[0],
                         stdin_path=path)]
        self.assertEqual(runs[-1].stdout.strip(), b"OK")
        runs.append(self.run_cmd("get", cli + ["--raw", "GET", "big"], usmc=v[0]))
        self.assertTrue(runs[-1].stdout == value + b"\n",
                        "GET returned %d bytes, want %d" %
                        (len(runs[-1].stdout), len(value) + 1))
        runs.append(self.run_cmd("strlen", cli + ["STRLEN", "big"], usmc=v[0]))
        self.assertEqual(runs[-1].stdout.strip(), str(len(value)).encode())
        self.check_modes(v, port, srv, runs, conns=len(runs),
                         reasons=REASONS.get(v))


class Rules(Case):
    """USMC_RULES on one side keeps that side's connections on TCP."""

    def test_client_rule(self):
        if CFG.variants == "plain":
            self.skipTest("rules only matter under usmc")
        self.require_usmc()
        srv, port = self.start_listener(
            "server", [tool("tt_server"), "--proto", "banner", "--conns", "1"],
            usmc=True)
        cli = self.start("client", [tool("tt_client"), "--port", str(port),
                                    "--proto", "banner"], usmc=True,
                         env={"USMC_RULES": "tcp client *:%d" % port})
        c = cli.result()
        s = srv.result()
        self.assertEqual((s["bytes"], s["sum"]), (c["bytes"], c["sum"]))
        found = self.check_modes(CLIENT_ONLY, port, srv, [cli], conns=1,
                                 reasons={"client": {"RULE"}})
        server_side = self.side_decisions([srv], "server", port)
        self.assertTrue(all(d["mode"] == "TCP" for d in server_side),
                        server_side)
        return found

    def test_server_rule(self):
        if CFG.variants == "plain":
            self.skipTest("rules only matter under usmc")
        self.require_usmc()
        srv, port = self.start_listener(
            "server", [tool("tt_server"), "--proto", "echo", "--conns", "1"],
            usmc=True, env={"USMC_RULES": "tcp server *:*"})
        cli = self.start("client", [tool("tt_client"), "--port", str(port)],
                         usmc=True)
        c = cli.result()
        s = srv.result()
        self.assertEqual((s["bytes"], s["sum"]), (c["bytes"], c["sum"]))
        self.check_modes(CLIENT_ONLY, port, srv, [cli], conns=1)
        server_side = self.side_decisions([srv], "server", port)
        self.assertTrue(all(d["mode"] == "TCP" for d in server_side),
                        server_side)


if __name__ == "__main__":
    main()
