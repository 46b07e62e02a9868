// The manual pages of the usmc subcommands, all in one place.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"

namespace usmc::cli {
namespace {

constexpr const char kUsage[] = R"(usage: usmc COMMAND [ARGS...]

usmc is SMC-R/SMC-D (RFC 7609) in user space: TCP connections between
programs on this host that both run under usmc move their data through
shared memory; everything else stays plain TCP.

Commands:
  run     run a program with usmc (like smc_run)
  ss      list the sockets handled by usmc (like smcss)
  stats   show or reset usmc statistics (like smcd stats)
  bench   compare usmc with plain TCP on this host
  bpf     install or remove the BPF SYN-option helper
  help    show the manual of a command: usmc help COMMAND

Options:
  -V, --version   print the version and exit
  -h, --help      print this text and exit

Run 'usmc help COMMAND' or 'usmc COMMAND --help' for details.
)";

constexpr const char kRunHelp[] = R"(NAME
    usmc run - run a program with usmc

SYNOPSIS
    usmc run [-d] [-r SIZE] [-t SIZE] [--rules RULES] [--] COMMAND [ARG...]

DESCRIPTION
    Runs COMMAND with libusmc.so preloaded, as smc_run(8) does with
    libsmc-preload.so. When two programs on this host both run under usmc,
    their TCP connections agree in a CLC handshake on the TCP connection
    (RFC 7609) to move the data through ring buffers in memory shared only
    by the two processes. The TCP connection stays open underneath as the
    control and liveness channel. Every other connection (a peer without
    usmc, another host, a connection the rules exclude, a failed handshake)
    stays plain TCP and is not touched.

    COMMAND replaces usmc (exec), so it keeps usmc's process id. Options are
    read up to the first argument that is not an option, or up to "--".

    libusmc.so is looked for in this order: $USMC_LIB; next to the usmc
    binary; DIR/../lib/usmc/ (installed layout); DIR/../preload/ (build
    tree), where DIR is the directory of the usmc binary. Its absolute path is
    appended to LD_PRELOAD; entries already there are kept. If libusmc.so
    was built with AddressSanitizer or ThreadSanitizer, the sanitizer runtime
    is put first in LD_PRELOAD, as the sanitizers require.

OPTIONS
    -d
        Debug: log one line per decision (rule match, handshake result,
        fallback reason) to stderr. Sets USMC_DEBUG=1.

    -r SIZE
        Receive buffer size of accelerated connections. SIZE is a byte count
        with an optional k or m suffix (64k, 1m). Sets USMC_RCVBUF.

    -t SIZE
        Send buffer size of accelerated connections. Sets USMC_SNDBUF.

    --rules RULES
        Which connections to accelerate (sets USMC_RULES). The rules are
        checked before COMMAND starts; a malformed rule is reported with
        its line number and usmc exits with status 2. Grammar, one rule per
        line or ';'-separated:
            accelerate|tcp  server|client|any  ENDPOINT
        ENDPOINT is ADDR[/LEN][:PORTS], [IPV6ADDR][/LEN][:PORTS], *[:PORTS]
        or :PORTS; PORTS is N, N-M or *. "server" matches the listening
        address, "client" the destination. The first matching rule wins;
        if none matches, usmc accelerates everything except port 53.

    -h, --help
        Print this text.

ENVIRONMENT
    USMC_LIB         path of libusmc.so (overrides the search above)
    USMC_DEBUG       non-zero: log decisions to stderr (set by -d)
    USMC_LOG         FILE: append the decision log to FILE instead
    USMC_RULES       inline rules (set by --rules)
    USMC_RULES_FILE  file with rules, used when USMC_RULES is not set;
                     default $XDG_CONFIG_HOME/usmc/rules or
                     ~/.config/usmc/rules
    USMC_RCVBUF      receive buffer size in bytes (set by -r)
    USMC_SNDBUF      send buffer size in bytes (set by -t)
    LD_PRELOAD       libusmc.so is appended to it
    ASAN_OPTIONS     sanitizer builds only: verify_asan_link_order=0 is
                     added unless it is already set

EXIT STATUS
    The exit status of COMMAND. Otherwise: 1 if libusmc.so is not found,
    2 for a usage error or malformed rules, 126 if COMMAND cannot be
    executed, 127 if COMMAND is not found.

EXAMPLES
    Serve and benchmark Redis through shared memory:
        usmc run redis-server --port 6379 &
        usmc run redis-benchmark -p 6379 -t get,set

    Accelerate only Redis, log every decision:
        usmc run -d --rules 'accelerate any *:6379; tcp any *' redis-server

    1 MiB buffers, decision log in a file:
        USMC_LOG=/tmp/usmc.log usmc run -r 1m -t 1m ./server
)";

constexpr const char kSsHelp[] = R"(NAME
    usmc ss - list the sockets handled by usmc

SYNOPSIS
    usmc ss [-a | -l] [-d] [--json] [--pid PID] [--port PORT]

DESCRIPTION
    Lists the sockets of the processes running under usmc, like smcss(8)
    does for kernel SMC. By default it shows the accelerated connections,
    one line each:
        State  UID  PID/Program  Local Address  Peer Address  Mode
    Mode is SHM for a connection whose data moves through shared memory,
    RDMA for one to another host whose data moves by RDMA over a link
    group (SMC-R), or TCP and the fallback reason for one that stays plain
    TCP: the CLC decline code's name as smcss shows it (PEERNOSMC, ...) or
    a usmc reason (RULE: a rule said tcp; NOLISTENER: no accelerated
    listener at the destination; SERVERFIRST, CLCTIMEOUT, ...).
    PEERDECL/NAME means the peer declined with diagnosis NAME. State is
    ACTIVE, LISTEN, PEERCLOSEWAIT (we shut down writing), APPCLOSEWAIT
    (the peer is done, the program has not closed), CLOSED or PEERABORT.

    When an RDMA connection is listed (and always with -d), two columns
    follow Mode: LGR, the id of the connection's link group in hex
    (0x1a2b), and Links, the links of that group active now; both are "-"
    for the other sockets.

    Each process under usmc keeps its records in a memfd named usmc-arena
    (shared with its forks), which usmc ss reads through /proc/PID/fd: you
    see your own processes, root sees all. A connection shared by forks is
    listed once; PID is the process that made it. Sockets of a process
    that exited or was killed are gone with it. A program that never
    touched a TCP socket has no arena and is not listed.

OPTIONS
    -a, --all
        All sockets: also the connections that fell back to TCP and the
        accelerated listeners.

    -l, --listening
        Only the accelerated listeners.

    -d, --details
        Add the LGR and Links columns and the ring details: role, fd,
        ring size, our producer cursor (txprod) and the peer's consumer
        cursor as last validated (txcons), the peer's producer cursor as
        last validated (rxprod) and our consumer cursor (rxcons), all as
        wrap:count in hex like smcss; bytes in flight (txprod - txcons)
        and unread (rxprod - rxcons) as of those cursors, bytes sent and
        received, and the flags (SHUT_RD, SHUT_WR, PEER_FIN, PEER_RESET,
        BROKEN, NONBLOCK). Fallback reasons show their code:
        TCP 0x03010000/PEERNOSMC.

    --json
        Print a JSON array, one object per socket, with these keys:
        state, uid, pid, pids (every process holding the arena), program,
        fd, inode, role ("client"|"server"), mode ("SHM"|"TCP"|"RDMA"),
        listening (bool), reason, reason_code ("0x..."), reason_origin
        ("local"|"peer") - the three are null unless mode is TCP -,
        lgr (link group id, hex string "0x1a2b") and links (active links
        of the group, int) - both null unless mode is RDMA -, local,
        local_addr, local_port, peer, peer_addr, peer_port,
        ring_bytes, bytes_out, bytes_in, send_calls, recv_calls,
        ring_full_local, ring_full_peer, tx_prod, tx_peer_cons,
        rx_peer_prod, rx_cons (cursor strings "wrap:count"), tx_inflight,
        rx_unread, flags (array of names), created_ns (CLOCK_REALTIME).
        Byte and call counts are those of accelerated connections (SHM
        and RDMA); a fallback's data goes through the kernel and is not
        counted.

    --pid PID
        Only the sockets of the processes sharing PID's arena (PID and its
        forks).

    --port PORT
        Only the sockets whose local or peer port is PORT.

    -h, --help
        Print this text.

ENVIRONMENT
    None.

EXIT STATUS
    0, or 2 for a usage error.

EXAMPLES
    usmc ss
    usmc ss -a
    usmc ss -l
    usmc ss -d --port 6379
    usmc ss --json --pid 4242
)";

constexpr const char kStatsHelp[] = R"(NAME
    usmc stats - show or reset usmc statistics

SYNOPSIS
    usmc stats [show | reset] [--json] [--watch [SECONDS] [--count N]]
               [--pid PID]

DESCRIPTION
    Shows the counters of the processes running under usmc, like
    "smcd stats" does for kernel SMC, for the host (the sum) and per
    process (a process and its forks share one set):
      connections accelerated through shared memory (SHM) or, to
      another host, by RDMA (SMC-R), and fallen back to TCP, client and
      server side; handshake errors (connections reset during the CLC
      handshake); listeners; connections open now (SHM/RDMA/TCP/listen);
      bytes and calls sent and received, average requests (send and
      receive calls) per accelerated connection;
      ring full: local - a send found the ring to the peer full; peer - a
      receive found our ring full, so the peer's sends had to wait;
      wake-ups: doorbells sent and received, sleeps in the kernel, and
      waits that were answered while spinning (no sleep);
      rings allocated by size and in use by size, segments created, slots
      reused;
      links (RDMA): link groups created, links that became active, link
      failures (an active link declared dead) and failovers (a dead
      link's connections moved to a surviving link of the group);
      fallbacks by reason, decided locally or declined by the peer.

    show (the default) prints them. reset stores the current values in
    each process's arena; show then prints what happened since. The
    counters live in the processes: a process that exits takes its share
    of the host total with it.

    The data-path counters (calls, ring full, wake-ups) cost two plain
    instructions each, with no shared atomic, lock or system call; built
    with -DUSMC_COUNTERS=OFF they are compiled out and shown as n/a.

OPTIONS
    --json
        Print one JSON object: time_ns, processes_count, host and
        processes (pid, pids, program, uid, start_ns, reset_ns, counters).
        Counter objects have the keys conns_shm_client, conns_shm_server,
        conns_tcp_client, conns_tcp_server, handshake_errors_client,
        handshake_errors_server, listeners, bytes_out, bytes_in,
        send_calls, recv_calls, ring_full_local, ring_full_peer,
        doorbells_sent, doorbells_received, sleeps, spin_wakeups,
        segments_created, slots_reused, conns_rdma_client,
        conns_rdma_server, link_groups, links_added, link_failures,
        failovers, conns_shm, conns_rdma, conns_tcp, conns_total,
        handshake_errors, avg_requests_per_conn, open_shm, open_rdma,
        open_tcp, open_listeners, counters_compiled, rings_allocated and
        rings_in_use (ring bytes -> count), fallback_reasons (NAME ->
        code, local, peer). With reset: {"reset": N, "failed": M}.

    --watch [SECONDS]
        Redraw the report in place every SECONDS (default 1) until
        interrupted, like top. With --json, one object per line.

    --count N
        With --watch: stop after N reports.

    --pid PID
        Only the process sharing PID's arena (show and reset).

    -h, --help
        Print this text.

ENVIRONMENT
    None.

EXIT STATUS
    0; 1 if a reset failed (no permission to write a process's arena);
    2 for a usage error.

EXAMPLES
    usmc stats
    usmc stats reset
    usmc stats --json --pid 4242
    usmc stats --watch 2
)";

constexpr const char kBenchHelp[] = R"(NAME
    usmc bench - compare usmc with plain TCP on this host

SYNOPSIS
    usmc bench [--quick] [-r N] [--only NAME[,NAME...]] [--variants LIST]
               [--json FILE] [--chart FILE] [--build-dir DIR] [OPTIONS]

DESCRIPTION
    Runs the benchmark driver (bench/usmc_bench.py, python3): every
    benchmark (ping-pong latency, streaming throughput, connection rate,
    idle cost, and tools such as redis-benchmark when installed) runs over
    kernel TCP loopback, with both ends under usmc run, and over Unix
    sockets where that applies, several times each. It prints medians,
    the spread (min-max) and the usmc/TCP ratios side by side, writes a
    JSON result and a PNG chart, and rewrites the table in
    docs/BENCHMARKS.md. It installs nothing.

OPTIONS
    --quick
        CI smoke run: tiny durations, one repetition.

    -r, --repetitions N
        Runs of each variant (default 3; 1 with --quick).

    --only NAME[,NAME...]
        Run just these benchmarks.

    --variants LIST
        Which of tcp,usmc,unix,fallback to run (default: all).

    --json FILE
        Result file (default BUILD/bench/result.json).

    --chart FILE
        PNG chart (default: next to the JSON result).

    --build-dir DIR
        The CMake build tree (default: the one this usmc belongs to).

    --docs FILE, --write-docs, --no-docs
        Which markdown table to rewrite; rewrite it even for --quick or
        --only; leave it alone.

    --step-timeout SECONDS
        How long a step may overrun its duration (default 60; 10 with
        --quick).

    --strict
        Exit with status 1 also when a run under usmc fails.

    --help
        Print this text.

ENVIRONMENT
    USMC_BENCH_SCRIPT  path of usmc_bench.py (overrides the search)
    USMC_LIB           path of libusmc.so, as for usmc run

EXAMPLES
    usmc bench --quick
    usmc bench --only pingpong,stream -r 5
    usmc bench --variants tcp,usmc --no-docs
)";

constexpr const char kBpfHelp[] = R"(NAME
    usmc bpf - install or remove the cross-host capability signal

SYNOPSIS
    usmc bpf install [--cgroup PATH] [--pin-dir DIR]
    usmc bpf uninstall [--pin-dir DIR]
    usmc bpf status [--pin-dir DIR]

DESCRIPTION
    install loads a sockops BPF program and attaches it to a cgroup v2
    directory. For every TCP socket created inside that cgroup it puts the
    option that kernel SMC uses (kind 254, ExID 0xE2D4C3D9) on the SYN,
    echoes it on the SYN-ACK only if the SYN carried it (never on a SYN
    cookie SYN-ACK, so both ends agree), and records per socket whether the
    peer sent it. libusmc.so reads that record (read-only, no privileges
    needed) as a hint that the peer on another host runs usmc; the CLC
    handshake on the connection stays the authority.

    A socket belongs to the cgroup its creator was in at socket() time.
    usmc run therefore moves the command into the cgroup before exec when
    the signal is installed and the caller may write the cgroup's
    cgroup.procs (root, or a delegated cgroup); usmc run --no-bpf does not.
    Any other program can be started inside with
        echo $$ > CGROUP/cgroup.procs; exec PROGRAM

    The program, its link and maps are pinned in /sys/fs/bpf/usmc (bpffs is
    mounted on /sys/fs/bpf if it is not; search permission for others is
    added to it if missing). The record map is pinned read-only for all
    (mode 0444). A symlink "cgroup" in that directory names the cgroup.
    Installing again is a no-op; an incomplete installation is replaced.

    uninstall detaches the program and removes the pins. If install created
    the cgroup, uninstall moves the processes still in it to its parent
    cgroup and removes it; a cgroup given with --cgroup that existed before
    is left alone. Uninstalling when nothing is installed is a no-op.
    Existing connections keep working; new sockets get no option.

    status shows what is installed and the program's counters.

    install and uninstall need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN).

OPTIONS
    --cgroup PATH
        The cgroup v2 directory to attach to; created if missing. A
        relative PATH is below the cgroup2 mount. Default: "usmc" below the
        cgroup2 mount (/sys/fs/cgroup/usmc, or /sys/fs/cgroup/unified/usmc
        on hybrid systems). The cgroup2 root itself covers every socket on
        the host.

    --pin-dir DIR
        Where to pin (default $USMC_BPF_PIN_DIR, else /sys/fs/bpf/usmc).
        Must be on bpffs. Lets tests use an installation of their own.

    -h, --help
        Print this text.

ENVIRONMENT
    USMC_BPF_PIN_DIR  the pin directory, for usmc bpf, usmc run and
                      libusmc.so alike

EXIT STATUS
    0 on success, 1 on failure, 2 for a usage error. status: 0 when
    installed and attached, 3 when not.

EXAMPLES
    sudo usmc bpf install
    sudo usmc bpf install --cgroup /sys/fs/cgroup/system.slice
    sudo usmc run -- redis-server --bind 10.0.0.1
    usmc bpf status
    sudo usmc bpf uninstall
)";

struct Page {
  const char* command;
  const char* text;
};

constexpr Page kPages[] = {
    {"run", kRunHelp},     {"ss", kSsHelp},   {"stats", kStatsHelp},
    {"bench", kBenchHelp}, {"bpf", kBpfHelp},
};

}  // namespace

bool PrintCommandHelp(const char* command) {
  for (const Page& p : kPages) {
    if (strcmp(p.command, command) == 0) {
      fputs(p.text, stdout);
      return true;
    }
  }
  return false;
}

void PrintUsage(bool to_stderr) { fputs(kUsage, to_stderr ? stderr : stdout); }

}  // namespace usmc::cli
