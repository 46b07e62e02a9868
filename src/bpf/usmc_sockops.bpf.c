/* usmc's capability signal: kernel SMC's TCP option (kind 254, ExID
 * 0xE2D4C3D9) on the SYN and SYN-ACK of sockets in the attached cgroup, and
 * per socket whether both directions of the handshake carried it.
 * See docs/BPF.md. */
#include "usmc_sockops.h"

#include <bpf/bpf_helpers.h>
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/tcp.h>

#ifndef SOL_TCP
#define SOL_TCP 6
#endif
#define USMC_TH_SYN 0x02
#define USMC_TH_ACK 0x10

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct usmc_peer_info);
} usmc_peer SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, USMC_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} usmc_stats SEC(".maps");

static __always_inline void count(__u32 slot) {
  __u64 *v = bpf_map_lookup_elem(&usmc_stats, &slot);
  if (v) *v += 1; /* per-CPU slot, and sockops runs with migration off */
}

/* On the stack: bpf_load_hdr_opt() overwrites its search buffer. */
static __always_inline void fill_option(__u8 *o) {
  o[0] = USMC_OPT_KIND;
  o[1] = USMC_OPT_LEN;
  o[2] = USMC_OPT_EXID0;
  o[3] = USMC_OPT_EXID1;
  o[4] = USMC_OPT_EXID2;
  o[5] = USMC_OPT_EXID3;
}

/* flags 0: the skb of the callback; BPF_LOAD_HDR_OPT_TCP_SYN: the received
 * SYN (the SYN being answered, or the child's saved SYN). Returns the
 * helper's result: USMC_OPT_LEN when found, -ENOMSG when absent, -ENOENT
 * when there is no SYN (syncookie child). */
static __always_inline long find_option(struct bpf_sock_ops *skops,
                                        __u64 flags) {
  __u8 opt[USMC_OPT_LEN];
  fill_option(opt);
  return bpf_load_hdr_opt(skops, opt, sizeof(opt), flags);
}

static __always_inline void set_cb_flags(struct bpf_sock_ops *skops, __u32 add,
                                         __u32 remove) {
  bpf_sock_ops_cb_flags_set(skops,
                            (skops->bpf_sock_ops_cb_flags | add) & ~remove);
}

static __always_inline void on_listen(struct bpf_sock_ops *skops) {
  int save = 0;
  /* Keep a TCP_SAVE_SYN the application chose (2 also saves the MAC). */
  if (bpf_getsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &save, sizeof(save)) ||
      save == 0) {
    save = 1;
    bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &save, sizeof(save));
  }
  set_cb_flags(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, 0);
  count(USMC_STAT_LISTEN);
}

/* Whether the header being built carries the option: every SYN; a SYN-ACK
 * only if the SYN carried it and the SYN-ACK is not a syncookie one (a
 * cookie connection keeps no SYN, so the server could not confirm later
 * while the client would). The write callback runs only after a reserve, so
 * the length callback (`at_len`) counts the decisions. */
static __always_inline int wants_option(struct bpf_sock_ops *skops,
                                        int at_len) {
  __u8 flags = skops->skb_tcp_flags;
  if (!(flags & USMC_TH_SYN)) {
    if (at_len) count(USMC_STAT_HDR_OTHER);
    return 0;
  }
  if (!(flags & USMC_TH_ACK)) return 1;
  if (skops->args[0] == BPF_WRITE_HDR_TCP_SYNACK_COOKIE) {
    if (at_len) count(USMC_STAT_SYNACK_COOKIE);
    return 0;
  }
  if (find_option(skops, BPF_LOAD_HDR_OPT_TCP_SYN) != USMC_OPT_LEN) {
    if (at_len) count(USMC_STAT_SYNACK_NO_PEER);
    return 0;
  }
  return 1;
}

static __always_inline void on_hdr_len(struct bpf_sock_ops *skops) {
  if (!wants_option(skops, 1)) return;
  if (bpf_reserve_hdr_opt(skops, USMC_OPT_LEN, 0) != 0) {
    count(USMC_STAT_WRITE_ERROR);
  }
}

static __always_inline void on_write_hdr(struct bpf_sock_ops *skops) {
  __u8 opt[USMC_OPT_LEN];
  if (!wants_option(skops, 0)) return;
  fill_option(opt);
  long rc = bpf_store_hdr_opt(skops, opt, sizeof(opt), 0);
  if (rc == 0) {
    count(skops->skb_tcp_flags & USMC_TH_ACK ? USMC_STAT_SYNACK_WRITTEN
                                             : USMC_STAT_SYN_WRITTEN);
  } else if (rc != -EEXIST) { /* -EEXIST: already there (retransmit) */
    count(USMC_STAT_WRITE_ERROR);
  }
}

static __always_inline void record(struct bpf_sock_ops *skops, __u8 side,
                                   int sent, long found) {
  struct bpf_sock *sk = skops->sk;
  struct usmc_peer_info *v = 0;
  if (sk) {
    v = bpf_sk_storage_get(&usmc_peer, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  }
  if (!v) {
    count(USMC_STAT_STORAGE_ERROR);
    return;
  }
  v->we_sent = sent ? 1 : 0;
  v->peer_ok = sent && found == USMC_OPT_LEN;
  v->side = side;
  if (v->peer_ok) {
    v->reason = USMC_REASON_OK;
  } else if (found == -ENOENT) {
    v->reason = USMC_REASON_NO_SAVED_SYN;
  } else if (!sent) {
    v->reason = USMC_REASON_NOT_SENT;
  } else {
    v->reason = USMC_REASON_PEER_NO_OPTION;
  }
  if (v->peer_ok) {
    count(side == USMC_SIDE_ACTIVE ? USMC_STAT_ACTIVE_CAPABLE
                                   : USMC_STAT_PASSIVE_CAPABLE);
  }
}

/* Active: the skb is the SYN-ACK. Passive: the child kept the SYN (the
 * listener has TCP_SAVE_SYN); it has none if it came from a syncookie. The
 * header callback flag tells whether our SYN / SYN-ACK carried the option
 * (set at connect or inherited from the listener). It is cleared after,
 * so the callbacks stop for the data packets. */
static __always_inline void on_established(struct bpf_sock_ops *skops,
                                           __u8 side) {
  int sent =
      (skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG) != 0;
  long found = find_option(
      skops, side == USMC_SIDE_ACTIVE ? 0 : BPF_LOAD_HDR_OPT_TCP_SYN);
  record(skops, side, sent, found);
  set_cb_flags(skops, 0, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
  count(side == USMC_SIDE_ACTIVE ? USMC_STAT_ACTIVE_EST
                                 : USMC_STAT_PASSIVE_EST);
}

SEC("sockops")
int usmc_sockops(struct bpf_sock_ops *skops) {
  switch (skops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
      set_cb_flags(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, 0);
      count(USMC_STAT_CONNECT);
      break;
    case BPF_SOCK_OPS_TCP_LISTEN_CB:
      on_listen(skops);
      break;
    case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
      on_hdr_len(skops);
      break;
    case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
      on_write_hdr(skops);
      break;
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
      on_established(skops, USMC_SIDE_ACTIVE);
      break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      on_established(skops, USMC_SIDE_PASSIVE);
      break;
  }
  return 1;
}
