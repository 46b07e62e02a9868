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
    does for kernel SMC. By default it shows the established connections,
    one line each:
        State  PID  Local Address  Peer Address  Mode
    Mode is SHM for a connection whose data moves through shared memory, or
    TCP followed by the fallback reason (the CLC decline code, as smcss
    shows it) for one that fell back. Sockets usmc never took over are not
    listed; use ss(8) for those.

OPTIONS
    -a, --all
        Also show listening sockets and connections that are closing.

    -l, --listening
        Show only the accelerated listeners (the registry entries of this
        network namespace).

    -d, --details
        Add the ring details: buffer sizes, the producer and consumer
        cursors of both directions, and the flags (waiting, done writing).

    --json
        Print a JSON array with one object per socket instead of a table.

    --pid PID
        Only the sockets of process PID.

    --port PORT
        Only the sockets whose local or peer port is PORT.

    -h, --help
        Print this text.

ENVIRONMENT
    None. Only the processes of the calling user are visible, all of them
    for root.

EXAMPLES
    usmc ss
    usmc ss -l
    usmc ss -d --port 6379
    usmc ss --json --pid 4242
)";

constexpr const char kStatsHelp[] = R"(NAME
    usmc stats - show or reset usmc statistics

SYNOPSIS
    usmc stats [show | reset] [--json] [--watch [SECONDS]]

DESCRIPTION
    Shows the counters of the processes running under usmc, like
    "smcd stats" does for kernel SMC: total connections, connections in
    shared memory (client and server side), handshake errors, fallbacks to
    TCP with a count per reason code, data sent and received (bytes and
    calls), how often a ring was full (locally and at the peer), wake-ups
    (doorbells) sent, and the buffer-size and request-size histograms.

    show (the default) prints the counters; reset sets them to zero.
    Counters are compiled out when usmc is built with
    -DUSMC_COUNTERS=OFF; stats then reports only connection totals.

OPTIONS
    --json
        Print the counters as one JSON object.

    --watch [SECONDS]
        Print the changes every SECONDS (default 1) until interrupted.

    -h, --help
        Print this text.

ENVIRONMENT
    None.

EXAMPLES
    usmc stats
    usmc stats reset
    usmc stats --json
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
    usmc bpf - install or remove the BPF SYN-option helper

SYNOPSIS
    usmc bpf install [--cgroup PATH]
    usmc bpf uninstall [--cgroup PATH]

DESCRIPTION
    install loads a sockops BPF program and attaches it to a cgroup. It
    puts the TCP experimental option that kernel SMC uses (kind 254,
    ExID 0xE2D4C3D9) on the SYN and SYN-ACK of sockets in that cgroup and
    records per socket whether the peer sent it. libusmc.so may use that
    record as a hint about the peer; the CLC handshake on the connection
    stays the authority. The program does not echo the option on SYN
    cookies, so both sides agree.
    The program and its map are pinned under /sys/fs/bpf/usmc; bpffs is
    mounted on /sys/fs/bpf if needed.

    uninstall detaches the program and removes the pins. Sockets that exist
    keep working; new ones get no hint.

    Both need root (CAP_BPF and CAP_NET_ADMIN). A socket belongs to the
    cgroup it was created in, so start the programs inside the cgroup.

OPTIONS
    --cgroup PATH
        The cgroup v2 directory to attach to (default: the cgroup v2 root).

    -h, --help
        Print this text.

ENVIRONMENT
    None.

EXAMPLES
    sudo usmc bpf install
    sudo usmc bpf install --cgroup /sys/fs/cgroup/usmc
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
