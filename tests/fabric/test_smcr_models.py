#!/usr/bin/env python3
"""Every server model over the cross-host link (SMC-R, tcp provider).

Two namespace hosts (scripts/netns.sh, one link used); tt_server under usmc in
usmcB with each model (blocking, thread, fork, exec, epoll LT/ET, oneshot,
poll, select) and tt_client under usmc in usmcA, echo (client first) and
banner (server first) protocols, three connections each, payload verified by
both (tt_* compare byte counts and checksums). Both ends declare each other
with a `remote` rule. Expected mode: RDMA on both ends, except the exec model:
a link group does not survive exec, so the server declines the cross-host
Proposal before it execs and the connection goes on as plain TCP (client
reason MODEUNSUPP, the server's diagnosis), stream intact.

Usage: test_smcr_models.py --usmc PATH --tools DIR --netns PATH
Exits 77 (skipped) when not root. USMC_TEST_QUICK=1: a subset of models.
"""
import os
import re
import subprocess
import sys

from smcr_hosts import env_for, main

MODELS = ["blocking", "thread", "fork", "exec", "epoll-lt", "epoll-et",
          "oneshot", "poll", "select"]
QUICK = ["blocking", "fork", "exec", "epoll-et"]
PORT = 7811


def modes(text):
    return re.findall(r"mode=(\w+) role=\w+(?: reason=(\S+))?", text)


def run_case(args, model, proto):
    server = subprocess.Popen(
        ["nsenter", "--net=/run/netns/usmcB", args.usmc, "run", "--",
         os.path.join(args.tools, "tt_server"), "--proto", proto, "--model",
         model, "--bind", "10.77.1.2", "--port", str(PORT), "--conns", "3",
         "--timeout", "60"],
        env=env_for("10.77.1.2"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    line = ""
    while True:  # usmc's decision lines come first
        got = server.stdout.readline()
        line += got
        if not got or got.startswith("LISTEN"):
            break
    if "LISTEN" not in line:
        server.kill()
        server.wait()
        return f"server did not listen: {line!r}"
    client = subprocess.run(
        ["nsenter", "--net=/run/netns/usmcA", args.usmc, "run", "--",
         os.path.join(args.tools, "tt_client"), "--host", "10.77.1.2",
         "--port", str(PORT), "--proto", proto, "--bytes", "300000",
         "--conns", "3", "--timeout", "60"],
        env=env_for("10.77.1.1"), capture_output=True, text=True, timeout=90)
    try:
        sout, _ = server.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        server.kill()
        sout, _ = server.communicate()
    sout = line + sout
    cout = client.stdout + client.stderr
    ok_c = re.search(r"^OK tt_client .*sum=(\w+)", cout, re.M)
    ok_s = re.search(r"^OK tt_server .*sum=(\w+)", sout, re.M)
    if client.returncode != 0 or server.returncode != 0 or not ok_c or not ok_s:
        return f"failed:\n-- client\n{cout}\n-- server\n{sout}"
    if ok_c.group(1) != ok_s.group(1):
        return f"checksums differ: {ok_c.group(1)} vs {ok_s.group(1)}"
    cm, sm = modes(cout), modes(sout)
    if model == "exec":
        want_c = [("TCP", "MODEUNSUPP")] * 3
        if cm != want_c:
            return f"client modes {cm}, want {want_c}\n{cout}"
    elif cm != [("RDMA", "")] * 3 or sm != [("RDMA", "")] * 3:
        return f"modes client {cm} server {sm}\n{cout}\n{sout}"
    return None


def run_all(args):
    models = QUICK if os.environ.get("USMC_TEST_QUICK") == "1" else MODELS
    failures = []
    for model in models:
        for proto in ("echo", "banner"):
            err = run_case(args, model, proto)
            print(f"{model}/{proto}: {'ok' if err is None else 'FAIL'}",
                  flush=True)
            if err:
                failures.append(f"{model}/{proto}: {err}")
    return "\n".join(failures) if failures else None


if __name__ == "__main__":
    sys.exit(main(run_all, extra_args=("--tools",)))
