#!/usr/bin/env python3
"""Bad input in the handshake (issue item 7): a hostile peer (evil_peer.py,
never under usmc) sends malformed CLC messages, an unknown version, an absurd
length, or stalls mid-handshake. The usmc side must decline or reset that
connection with a reason, never crash or hang, and other connections must be
untouched. The plain variants run the same hostile peers against plain
programs (which must see the stream byte for byte)."""

import time

from harness import (BOTH, PLAIN, Case, helper, main, pair_variants,
                     system_python, tool, variant_name)

MODES = ["garbage", "badversion", "badlength", "stall"]


class BadPeer(Case):
    def evil(self, name, args):
        return [system_python(), helper("evil_peer.py")] + args

    def test_hostile_client(self):
        """A usmc server faces a hostile client and a good one."""
        for v in pair_variants():
            for mode in MODES:
                with self.subTest(variant=variant_name(v), mode=mode):
                    self.hostile_client(v, mode)

    def hostile_client(self, v, mode):
        srv, port = self.start_listener("server", [
            tool("tt_server"), "--model", "epoll-lt", "--conns", "2"],
            usmc=v[1])
        expect = "decline" if v == BOTH else "echo"
        evil = self.start("evil", self.evil("evil", [
            "client", mode, str(port), "100000", expect]))
        evil.expect("SENT")  # the bad handshake is on its way
        t0 = time.monotonic()
        good = self.start("good", [tool("tt_client"), "--port", str(port),
                                   "--bytes", "1000000"], usmc=v[1])
        good.result(timeout=20)
        if mode == "stall":
            self.assertLess(time.monotonic() - t0, 4.0,
                            "a stalled handshake delayed another connection")
        evil.result(timeout=20)
        if v == BOTH and mode in ("stall", "badlength"):
            # The hostile client hangs up abruptly, so the server may see a
            # reset on that one connection: it must still end normally.
            rc = srv.wait(timeout=20)
            last = srv.out[-1] if srv.out else ""
            self.assertTrue(rc == 0 or (rc == 1 and "connection " in last),
                            srv.context())
        else:
            srv.result(timeout=20)
        if v == BOTH:
            ds = self.side_decisions([srv], "server", port)
            modes = sorted(d["mode"] for d in ds)
            self.assertEqual(modes, ["SHM", "TCP"], ds)
            self.assertTrue(all(d["reason"] for d in ds if d["mode"] == "TCP"))

    def test_hostile_server(self):
        """A usmc client faces a server that answers its Proposal badly."""
        for v in pair_variants():
            for mode in MODES:
                with self.subTest(variant=variant_name(v), mode=mode):
                    self.hostile_server(v, mode)

    def hostile_server(self, v, mode):
        evil, port = self.start_listener("evil", self.evil("evil", [
            "server", mode]))
        cli = self.start("client", [tool("tt_client"), "--port", str(port),
                                    "--bytes", "1000000"], usmc=v[0])
        rc = cli.wait(timeout=20)
        e = evil.result(timeout=20)
        if v == PLAIN:
            self.assertEqual(rc, 0, cli.context())
            self.assertEqual(e["proposal"], "False")
            return
        self.assertEqual(e["proposal"], "True", "the usmc client sent no "
                         "Proposal to a registered listener")
        if mode == "badlength" and rc != 0:  # unframeable: a reset is allowed
            self.assertRegex(cli.context().lower(), "reset|not connected")
        else:
            self.assertEqual(rc, 0, cli.context())
            self.assertEqual(e["echoed"], "1000000")
        ds = self.side_decisions([cli], "client", port)
        self.assertEqual([d["mode"] for d in ds], ["TCP"], ds)
        self.assertTrue(ds[0]["reason"], ds)


if __name__ == "__main__":
    main()
