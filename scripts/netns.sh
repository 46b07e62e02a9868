#!/usr/bin/env bash
# Two test "hosts" made of network namespaces, joined by two veth pairs (two
# links per host pair), for the fabric (SMC-R) tests:
#
#   usmcA                               usmcB
#   ufa1 10.77.1.1/24  <--- veth --->   ufb1 10.77.1.2/24    (link 1)
#   ufa2 10.77.2.1/24  <--- veth --->   ufb2 10.77.2.2/24    (link 2)
#
# Everything lives inside the two namespaces: no address, route or interface
# is added to the calling namespace, so test traffic can only reach these
# addresses. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
#
# Usage: scripts/netns.sh up        create (idempotent: repairs what is missing)
#        scripts/netns.sh down      remove both namespaces and their veths
#        scripts/netns.sh status    show addresses and link state
#        scripts/netns.sh link A|B 1|2 up|down
#                                   set one side of link 1 or 2 up or down
# Env:   USMC_NS_A, USMC_NS_B       namespace names (default usmcA, usmcB)
set -euo pipefail

A=${USMC_NS_A:-usmcA}
B=${USMC_NS_B:-usmcB}

die() { echo "netns.sh: $*" >&2; exit 1; }

has_ns() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
has_link() { ip -n "$1" link show "$2" >/dev/null 2>&1; }

up() {
  [[ $(id -u) -eq 0 ]] || die "needs root"
  for ns in "$A" "$B"; do
    has_ns "$ns" || ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  for i in 1 2; do
    # A half-made pair (one end missing) is removed and made again.
    if has_link "$A" "ufa$i" && ! has_link "$B" "ufb$i"; then
      ip -n "$A" link del "ufa$i"
    fi
    if has_link "$B" "ufb$i" && ! has_link "$A" "ufa$i"; then
      ip -n "$B" link del "ufb$i"
    fi
    if ! has_link "$A" "ufa$i"; then
      ip link add "ufa$i" netns "$A" type veth peer name "ufb$i" netns "$B"
    fi
    ip -n "$A" addr replace "10.77.$i.1/24" dev "ufa$i"
    ip -n "$B" addr replace "10.77.$i.2/24" dev "ufb$i"
    ip -n "$A" link set "ufa$i" up
    ip -n "$B" link set "ufb$i" up
  done
}

down() {
  [[ $(id -u) -eq 0 ]] || die "needs root"
  for ns in "$A" "$B"; do
    if has_ns "$ns"; then ip netns del "$ns"; fi
  done
}

status() {
  for ns in "$A" "$B"; do
    if has_ns "$ns"; then
      echo "== $ns"
      ip -n "$ns" -br addr show
    else
      echo "== $ns: absent"
    fi
  done
}

link() {
  [[ $# -eq 3 ]] || die "usage: link A|B 1|2 up|down"
  local side=$1 n=$2 state=$3 ns dev
  case $side in
    A) ns=$A; dev=ufa$n ;;
    B) ns=$B; dev=ufb$n ;;
    *) die "side must be A or B" ;;
  esac
  [[ $n == 1 || $n == 2 ]] || die "link must be 1 or 2"
  [[ $state == up || $state == down ]] || die "state must be up or down"
  ip -n "$ns" link set "$dev" "$state"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  link) shift; link "$@" ;;
  *) die "usage: $0 up|down|status|link A|B 1|2 up|down" ;;
esac
