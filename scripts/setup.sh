#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build and test usmc.
# Idempotent and fast on a prepared machine: apt is skipped entirely when every
# package is already installed. Services shipped by the packages (redis,
# nginx, memcached, iperf3) are kept from starting: the tests start their own.
set -euo pipefail

PACKAGES=(
  build-essential cmake clang clang-format clang-tidy
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libfabric-dev libbpf-dev bpftool
  redis-server redis-tools nginx-light memcached libmemcached-tools
  iperf3 wrk sockperf curl python3 gnuplot-nox iproute2
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# policy-rc.d exit 101 = "do not start services" (only if none is in place).
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee $POLICY >/dev/null
  $SUDO chmod 755 $POLICY
  trap '$SUDO rm -f $POLICY' EXIT
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO -E apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
