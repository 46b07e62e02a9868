#!/usr/bin/env python3
"""Real programs (Debian's packages), unmodified, plain on both ends and under
usmc on both ends: redis-server + redis-benchmark/redis-cli, nginx (master +
2 workers) + curl/wrk, memcached + a python client, iperf3, python3
http.server + urllib, python3 asyncio echo. Data is checked byte-exact; under
usmc every connection must have been SHM on both sides."""

import hashlib
import json
import os
import re
import signal

from harness import (BOTH, Case, free_port, helper, main, pair_variants, size,
                     system_python, variant_name)


class AppCase(Case):
    def server(self, v, name, argv, port, **kw):
        srv = self.start(name, argv, usmc=v[1], **kw)
        self.wait_listen(srv, port, usmc=v[1])
        return srv

    def modes(self, v, port, server, clients):
        """All connections to `port` agree on the mode; under usmc, SHM."""
        if v == BOTH:
            self.check_modes(v, port, server, clients)

    def blob_file(self, name, nbytes):
        data = os.urandom(nbytes)
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        return path, hashlib.sha256(data).hexdigest()


class Redis(AppCase):
    def test_benchmark_and_big_value(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                self.redis(v)

    def redis(self, v):
        port = free_port()
        srv = self.server(v, "redis-server", [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.tmp,
            "--protected-mode", "no", "--logfile",
            os.path.join(self.tmp, "redis.log")], port)
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        n = size(20000, 5000)
        runs = [self.run_cmd("bench", [
            "redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n",
            str(n), "-c", "50", "-t", "set,get,incr,lpush", "-q"],
            usmc=v[0], timeout=300)]
        out = runs[0].stdout.decode(errors="replace")
        for t in ("SET", "GET", "INCR", "LPUSH"):
            self.assertRegex(out, r"(?:^|[\r\n])%s: [\d.]+ requests per "
                             r"second" % t)
        self.assertNotRegex(out + runs[0].stderr.decode(errors="replace"),
                            r"(?i)error")
        for cmd, want in ((["GET", "counter:__rand_int__"], str(n)),
                          (["LLEN", "mylist"], str(n)),
                          (["STRLEN", "key:__rand_int__"], "3")):
            runs.append(self.run_cmd("check", cli + cmd, usmc=v[0]))
            self.assertEqual(runs[-1].stdout.decode().strip(), want, cmd)
        path, _ = self.blob_file("value.bin", 1 << 20)
        runs.append(self.run_cmd("set", cli + ["-x", "SET", "big"], usmc=v[0],
                             stdin_path=path))
        runs.append(self.run_cmd("get", cli + ["--raw", "GET", "big"], usmc=v[0]))
        with open(path, "rb") as f:
            self.assertTrue(runs[-1].stdout == f.read() + b"\n",
                            "1 MB value differs after SET/GET")
        hold = self.hold_check(v, port)
        self.modes(v, port, srv, runs + [hold])

    def hold_check(self, v, port):
        """A python RESP client under usmc: SET+GET of 1 MB, then the
        connection is held while ss shows its TCP byte counters."""
        nbytes = 1 << 20
        p = self.start("resp-hold", [system_python(), helper("apps_clients.py"),
                                     "resp-hold", str(port), str(nbytes)],
                       usmc=v[0], stdin=True)
        line = p.expect("OK resp-hold", timeout=60)
        lport = int(line.rsplit("lport=", 1)[1])
        self.check_tcp_bytes(v, lport, port, nbytes)
        p.close_stdin()
        p.result()
        return p


class Nginx(AppCase):
    CONF = """
worker_processes 2;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""

    def test_curl_and_wrk(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                self.nginx(v)

    def nginx(self, v):
        port = free_port()
        www = os.path.join(self.tmp, "www")
        os.mkdir(www)
        os.chmod(www, 0o755)
        _, sha = self.blob_file("www/blob.bin", size(8 << 20, 1 << 20))
        self.blob_file("www/small.bin", 1024)
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.CONF.format(tmp=self.tmp, port=port))
        srv = self.server(v, "nginx", ["nginx", "-p", self.tmp, "-c", conf],
                          port)
        url = "http://127.0.0.1:%d/" % port
        out = os.path.join(self.tmp, "got.bin")
        runs = [self.run_cmd("curl", ["curl", "-sS", "--fail", "-o", out,
                                  url + "blob.bin", "-o", out + ".2",
                                  url + "blob.bin"], usmc=v[0])]
        for path in (out, out + ".2"):
            with open(path, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sha)
        runs.append(self.run_cmd("wrk", ["wrk", "-t", "2", "-c", "20", "-d", "2",
                                     url + "small.bin"], usmc=v[0],
                             timeout=60))
        text = runs[-1].stdout.decode(errors="replace")
        m = re.search(r"(\d+) requests in", text)
        self.assertTrue(m and int(m.group(1)) > 0, text)
        self.assertNotIn("Non-2xx", text)
        self.assertNotIn("Socket errors", text)
        self.modes(v, port, srv, runs)


class Memcached(AppCase):
    def test_set_get(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                port = free_port()
                argv = ["memcached", "-l", "127.0.0.1", "-p", str(port),
                        "-U", "0", "-m", "64", "-t", "2"]
                if os.geteuid() == 0:
                    argv += ["-u", "nobody"]
                srv = self.server(v, "memcached", argv, port)
                r = self.run_cmd("client", [system_python(),
                                        helper("apps_clients.py"), "memcached",
                                        str(port)], usmc=v[0])
                self.assertTrue(r.stdout.startswith(b"OK memcached"), r.stdout)
                self.modes(v, port, srv, [r])


class Iperf3(AppCase):
    def test_iperf3(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                port = free_port()
                srv = self.server(v, "iperf3-s", ["iperf3", "-s", "-p",
                                                   str(port), "-1"], port)
                r = self.run_cmd("iperf3-c", [
                    "iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                    str(size(2, 1)), "-J"], usmc=v[0], timeout=60)
                res = json.loads(r.stdout)
                self.assertNotIn("error", res)
                self.assertGreater(res["end"]["sum_received"]["bytes"], 0)
                self.assertEqual(srv.wait(timeout=30), 0, srv.context())
                self.modes(v, port, srv, [r])


class PythonApps(AppCase):
    def test_http_server_urllib(self):
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                port = free_port()
                _, sha = self.blob_file("page.bin", size(4 << 20, 1 << 20))
                srv = self.server(v, "http.server", [
                    system_python(), "-m", "http.server", str(port), "--bind",
                    "127.0.0.1", "--directory", self.tmp], port)
                r = self.run_cmd("fetch", [
                    system_python(), helper("apps_clients.py"), "fetch",
                    "http://127.0.0.1:%d/page.bin" % port, sha, "3"],
                    usmc=v[0])
                self.assertTrue(r.stdout.startswith(b"OK fetch"), r.stdout)
                self.modes(v, port, srv, [r])

    def test_asyncio_echo(self):
        conns, nbytes = 8, size(1 << 20, 200000)
        for v in pair_variants():
            with self.subTest(variant=variant_name(v)):
                srv, port = self.start_listener("echo-server", [
                    system_python(), helper("apps_clients.py"),
                    "echo-server"], usmc=v[1])
                r = self.run_cmd("echo-client", [
                    system_python(), helper("apps_clients.py"), "echo-client",
                    str(port), str(nbytes), str(conns)], usmc=v[0])
                self.assertEqual(r.stdout.split()[2:],
                                 [b"conns=%d" % conns,
                                  b"bytes=%d" % (conns * nbytes)])
                srv.kill(signal.SIGTERM)
                s = srv.result()
                self.assertEqual((int(s["conns"]), int(s["bytes"])),
                                 (conns, conns * nbytes))
                if v == BOTH:
                    self.check_modes(v, port, srv, [r], conns=conns)


if __name__ == "__main__":
    main()
