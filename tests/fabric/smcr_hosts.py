"""Shared plumbing of the small two-host SMC-R tests (test_smcr_models.py,
test_smcr_stall.py, test_smcr_fork.py): the environment that makes two
programs under usmc in the namespace hosts use the cross-host link (a
`remote` rule, the tcp provider), and a main that takes the namespace lock,
builds the hosts (scripts/netns.sh), runs the test and tears them down.
"""
import argparse
import fcntl
import os
import subprocess

LOCK = "/run/usmc-fabric-netns.lock"


def env_for(links, **extra):
    """Environment for a program on the host whose link addresses are links."""
    e = dict(os.environ)
    e.update({"USMC_RULES": "remote any 10.77.0.0/16",
              "USMC_FABRIC_ALLOW_TCP": "1", "USMC_FABRIC_PROVIDER": "tcp",
              "USMC_FABRIC_LINKS": links, "USMC_DEBUG": "1"})
    e.update({k: str(v) for k, v in extra.items()})
    return e


def main(run, extra_args=()):
    """Parses --usmc/--netns (and extra_args), runs run(args) on fresh hosts;
    run returns None or a failure text. Exit code for CTest (77: skipped)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--usmc", required=True)
    ap.add_argument("--netns", required=True)
    for name in extra_args:
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return 77
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["bash", args.netns, "up"], check=True)
        try:
            err = run(args)
        finally:
            if os.environ.get("USMC_TEST_KEEP") != "1":
                subprocess.run(["bash", args.netns, "down"])
    print(err if err else "PASSED")
    return 1 if err else 0
