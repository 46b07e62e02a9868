#!/usr/bin/env python3
"""`usmc ss` and `usmc stats` against real processes (stats_peer.py, plain
and under usmc): accelerated connections, fallbacks for several reasons
(NOLISTENER, PEERNOSMC, RULE), listeners, forks sharing an arena, a client
killed with SIGKILL mid-stream; modes, reasons, addresses and byte counts
in the JSON output are compared with what the programs did, and nothing of
a dead process may remain. Other processes under usmc may run on the host at
the same time, so every query is narrowed with --pid."""

import json
import os
import signal
import subprocess
import sys
import time

from harness import CFG, Case, helper, main, system_python, usmc_cli

PEER = helper("stats_peer.py")


class SsStats(Case):
    def setUp(self):
        super().setUp()
        if CFG.variants == "plain":
            self.skipTest("usmc ss/stats only exist under usmc")
        self.require_usmc()

    # ---- helpers ---------------------------------------------------------

    def cli(self, *args, check=True):
        r = subprocess.run([usmc_cli()] + list(args), capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            self.fail("usmc %s: rc=%d\n%s%s" % (" ".join(args), r.returncode,
                                                 r.stdout, r.stderr))
        return r

    def ss(self, pid, *extra):
        return json.loads(self.cli("ss", "--json", "--pid", str(pid),
                                   *extra).stdout)

    def stats(self, pid):
        doc = json.loads(self.cli("stats", "--json", "--pid", str(pid)).stdout)
        procs = [p for p in doc["processes"] if pid in p["pids"]]
        self.assertEqual(len(procs), 1, doc)
        return procs[0]["counters"]

    def server(self, usmc=True, fork=False, env=None):
        argv = [system_python(), PEER, "server"] + (["--fork"] if fork else [])
        return self.start_listener("server", argv, usmc=usmc, env=env)

    def client(self, port, usmc=True, send=0, recv=0, conns=1, stream=False,
               env=None):
        argv = [system_python(), PEER, "client", "--port", str(port),
                "--send", str(send), "--recv", str(recv), "--conns",
                str(conns)] + (["--stream"] if stream else [])
        p = self.start("client", argv, usmc=usmc, stdin=True, env=env)
        line = p.expect("READY", timeout=60)
        kv = dict(f.split("=", 1) for f in line.split()[1:])
        ports = [int(x) for x in kv["ports"].split(",")]
        return p, ports, int(kv["sent"]), int(kv["received"])

    def wait_for(self, what, fn, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail("timed out waiting for %s" % what)
            time.sleep(0.05)

    def one(self, rows, **match):
        got = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
        self.assertEqual(len(got), 1, "want one row with %s in\n%s" %
                         (match, json.dumps(rows, indent=1)))
        return got[0]

    # ---- tests -----------------------------------------------------------

    def test_accelerated(self):
        srv, port = self.server()
        cli, ports, sent, received = self.client(port, send=300000,
                                                 recv=70000, conns=2)
        rows = self.ss(cli.pid)
        self.assertEqual(len(rows), 2, rows)
        for lport in ports:
            r = self.one(rows, local_port=lport)
            self.assertEqual((r["mode"], r["role"], r["state"]),
                             ("SHM", "client", "ACTIVE"))
            self.assertEqual((r["peer"], r["local_addr"], r["pid"]),
                             ("127.0.0.1:%d" % port, "127.0.0.1", cli.pid))
            self.assertEqual((r["bytes_out"], r["bytes_in"]), (sent, received))
            self.assertIsNone(r["reason"])
            self.assertEqual((r["lgr"], r["links"]), (None, None))  # RDMA only
            self.assertGreater(r["ring_bytes"], 0)
            # as of our last send: the peer's consumer cursor last validated
            self.assertLessEqual(r["tx_inflight"], min(sent, r["ring_bytes"]))
            self.assertRegex(r["tx_prod"], r"^[0-9a-f]{4}:[0-9a-f]{8}$")
            s = self.one(self.ss(srv.pid), peer_port=lport)
            self.assertEqual((s["mode"], s["role"], s["local"]),
                             ("SHM", "server", "127.0.0.1:%d" % port))
            self.assertEqual((s["bytes_in"], s["bytes_out"]), (sent, received))
        listeners = self.ss(srv.pid, "-l")
        self.assertEqual([(r["local"], r["state"], r["listening"])
                          for r in listeners],
                         [("127.0.0.1:%d" % port, "LISTEN", True)])
        self.assertEqual(len(self.ss(srv.pid)), 2)  # default: connections only
        c = self.stats(cli.pid)
        self.assertEqual((c["conns_shm_client"], c["conns_tcp"],
                          c["open_shm"]), (2, 0, 2))
        self.assertEqual((c["conns_rdma_client"], c["conns_rdma_server"],
                          c["conns_rdma"], c["open_rdma"], c["conns_total"]),
                         (0, 0, 0, 0, 2))  # same host: no RDMA
        self.assertEqual((c["link_groups"], c["links_added"],
                          c["link_failures"], c["failovers"]), (0, 0, 0, 0))
        self.assertEqual((c["bytes_out"], c["bytes_in"]),
                         (2 * sent, 2 * received))
        if c["counters_compiled"]:
            self.assertGreaterEqual(c["send_calls"], 2)
            self.assertGreaterEqual(c["recv_calls"], 2)
        s = self.stats(srv.pid)
        self.assertEqual((s["conns_shm_server"], s["listeners"],
                          s["open_listeners"]), (2, 1, 1))
        self.assertEqual(s["rings_in_use"], {str(r["ring_bytes"]): 2})
        cli.close_stdin()
        self.assertEqual(cli.result(), {})
        self.wait_for("server records gone",
                      lambda: not self.ss(srv.pid))
        c = self.stats(srv.pid)
        self.assertEqual((c["bytes_in"], c["bytes_out"], c["open_shm"]),
                         (2 * sent, 2 * received, 0))  # kept after close

    def test_fallback_reasons(self):
        usrv, uport = self.server(usmc=True)
        psrv, pport = self.server(usmc=False)
        # usmc client -> plain server: NOLISTENER (client side)
        c1, p1, _, _ = self.client(pport, send=10, recv=10)
        r = self.one(self.ss(c1.pid, "-a"), local_port=p1[0])
        self.assertEqual((r["mode"], r["reason"], r["reason_code"],
                          r["reason_origin"], r["role"]),
                         ("TCP", "NOLISTENER", "0x0a000002", "local", "client"))
        self.assertEqual(r["peer"], "127.0.0.1:%d" % pport)
        self.assertEqual(self.ss(c1.pid), [])  # fallbacks only with -a
        # plain client -> usmc server: PEERNOSMC (server side)
        c2, p2, _, _ = self.client(uport, usmc=False, send=10, recv=10)
        r = self.one(self.ss(usrv.pid, "-a"), peer_port=p2[0])
        self.assertEqual((r["mode"], r["reason"], r["role"], r["local"]),
                         ("TCP", "PEERNOSMC", "server", "127.0.0.1:%d" % uport))
        # rules: usmc client told to stay on TCP -> RULE; server: PEERNOSMC
        c3, p3, _, _ = self.client(uport, send=7, recv=7,
                                   env={"USMC_RULES": "tcp any *:%d" % uport})
        r = self.one(self.ss(c3.pid, "-a"), local_port=p3[0])
        self.assertEqual((r["mode"], r["reason"]), ("TCP", "RULE"))
        r = self.one(self.ss(usrv.pid, "-a"), peer_port=p3[0])
        self.assertEqual(r["reason"], "PEERNOSMC")
        text = self.cli("ss", "-a", "--pid", str(c3.pid)).stdout
        self.assertIn("TCP RULE", text)
        text = self.cli("ss", "-a", "-d", "--pid", str(c3.pid)).stdout
        self.assertIn("TCP 0x0a000001/RULE", text)
        s = self.stats(usrv.pid)
        self.assertEqual(s["fallback_reasons"]["PEERNOSMC"],
                         {"code": "0x03010000", "local": 2, "peer": 0})
        self.assertEqual((s["conns_tcp_server"], s["open_tcp"]), (2, 2))
        for proc, reason in ((c1, "NOLISTENER"), (c3, "RULE")):
            s = self.stats(proc.pid)
            self.assertEqual(s["fallback_reasons"][reason]["local"], 1)
            self.assertEqual(s["conns_tcp_client"], 1)
        for p in (c1, c2, c3):
            p.close_stdin()
            p.result()
        self.wait_for("fallback records released on close",
                      lambda: not [r for r in self.ss(usrv.pid, "-a")
                                   if r["mode"] == "TCP"])
        self.assertEqual(self.stats(usrv.pid)["open_tcp"], 0)

    def test_fork_shares_arena(self):
        srv, port = self.server(fork=True)
        cli, ports, sent, _ = self.client(port, send=1000, recv=10)
        rows = self.wait_for("the child in the arena's pids", lambda: [
            r for r in self.ss(srv.pid) if len(r["pids"]) >= 2])
        r = self.one(rows, peer_port=ports[0])
        self.assertIn(srv.pid, r["pids"])
        self.assertEqual(r["bytes_in"], sent)
        child = [p for p in r["pids"] if p != srv.pid][0]
        self.assertEqual(self.ss(child), self.ss(srv.pid))  # one arena
        cli.close_stdin()
        cli.result()

    def test_sigkill_leaves_nothing(self):
        srv, port = self.server()
        cli, ports, _, _ = self.client(port, send=10, recv=10, stream=True)
        self.wait_for("bytes streaming", lambda: [
            r for r in self.ss(cli.pid) if r["bytes_out"] > 1000000])
        cli.kill(signal.SIGKILL)
        cli.p.wait(timeout=10)
        self.assertEqual(self.ss(cli.pid, "-a"), [])
        all_pids = [p for a in json.loads(self.cli("stats", "--json").stdout)
                    ["processes"] for p in a["pids"]]
        self.assertNotIn(cli.pid, all_pids)
        line = srv.expect("CLOSED peer=%d" % ports[0], timeout=30)
        received = int(line.split("received=")[1].split()[0])
        self.wait_for("server record gone", lambda: not [
            r for r in self.ss(srv.pid, "-a") if r["peer_port"] == ports[0]])
        s = self.stats(srv.pid)
        self.assertEqual(s["bytes_in"], received)
        self.assertEqual(s["open_shm"], 0)

    def test_reset_and_watch(self):
        srv, port = self.server()
        cli, _, sent, _ = self.client(port, send=5000, recv=5)
        self.assertEqual(self.stats(srv.pid)["bytes_in"], sent)
        self.assertIn("reset 1 process", self.cli("stats", "reset", "--pid",
                                                  str(srv.pid)).stdout)
        s = self.stats(srv.pid)
        self.assertEqual((s["bytes_in"], s["conns_shm"], s["open_shm"]),
                         (0, 0, 1))  # counters restart, open conns stay
        cli2, _, sent2, _ = self.client(port, send=777, recv=5)
        s = self.stats(srv.pid)
        self.assertEqual((s["bytes_in"], s["conns_shm_server"]), (sent2, 1))
        out = self.cli("stats", "--watch", "0.1", "--count", "2", "--pid",
                       str(srv.pid)).stdout
        self.assertEqual(out.count("\x1b[H\x1b[2J"), 2)
        self.assertIn("accelerated (SHM)", out)
        self.assertIn("accelerated (RDMA)", out)
        self.assertIn("link failures", out)
        text = self.cli("stats", "--pid", str(srv.pid)).stdout
        self.assertIn("last reset", text)
        for p in (cli, cli2):
            p.close_stdin()
            p.result()

    def test_users_see_their_own(self):
        """A user sees their own processes, root sees everybody's."""
        if os.geteuid() != 0:
            self.skipTest("needs root to start a process as another user")
        nobody = ["setpriv", "--reuid=65534", "--regid=65534",
                  "--clear-groups", "--"]
        theirs, tport = self.start_listener(
            "nobody-server", nobody + [usmc_cli(), "run", "--",
                                       system_python(), PEER, "server"],
            env={"HOME": self.tmp})  # root's ~/.config is not readable
        mine, mport = self.server()

        def listeners(as_nobody):
            argv = [usmc_cli(), "ss", "-l", "--json"]
            out = subprocess.run((nobody if as_nobody else []) + argv,
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            return {(r["pid"], r["uid"]) for r in json.loads(out.stdout)}
        seen = listeners(as_nobody=True)
        self.assertIn((theirs.pid, 65534), seen)
        self.assertNotIn(mine.pid, {pid for pid, _ in seen})
        seen = listeners(as_nobody=False)
        self.assertIn((theirs.pid, 65534), seen)
        self.assertIn((mine.pid, 0), seen)

    def test_usage_errors(self):
        for args in (["ss", "--port", "0"], ["ss", "-a", "-l"],
                     ["ss", "--pid", "x"], ["stats", "bogus"],
                     ["stats", "reset", "--watch"], ["stats", "--count", "0"]):
            r = self.cli(*args, check=False)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
        self.assertEqual(self.cli("ss", "--json", "--pid", "999999999").stdout
                         .strip(), "[]")


if __name__ == "__main__":
    main()
