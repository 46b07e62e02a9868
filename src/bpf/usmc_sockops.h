/* Shared between the sockops program (BPF C) and user space (C++): the
 * per-socket record and the statistics slots. Plain C, fixed-size types. */
#ifndef USMC_BPF_USMC_SOCKOPS_H_
#define USMC_BPF_USMC_SOCKOPS_H_

#include <linux/types.h>

/* Kernel SMC's SYN option: kind 254 (RFC 6994 experimental), length 6,
 * ExID 0xE2D4C3D9 ("SMCR" in EBCDIC). */
#define USMC_OPT_KIND 254
#define USMC_OPT_LEN 6
#define USMC_OPT_EXID0 0xE2
#define USMC_OPT_EXID1 0xD4
#define USMC_OPT_EXID2 0xC3
#define USMC_OPT_EXID3 0xD9

enum usmc_side {
  USMC_SIDE_ACTIVE = 1,  /* connect() */
  USMC_SIDE_PASSIVE = 2, /* accept() */
};

/* Why peer_ok is 0 (or USMC_REASON_OK). */
enum usmc_reason {
  USMC_REASON_OK = 0,
  USMC_REASON_PEER_NO_OPTION = 1, /* the peer's SYN / SYN-ACK had no option */
  USMC_REASON_NO_SAVED_SYN = 2,   /* passive: no saved SYN (SYN cookie) */
  USMC_REASON_NOT_SENT = 3,       /* active: our SYN did not carry it */
};

/* Value of the SK_STORAGE map (key: the socket fd in user space). */
struct usmc_peer_info {
  __u8 peer_ok; /* 1: both directions of the handshake carried the option */
  __u8 we_sent; /* 1: our SYN / SYN-ACK carried the option */
  __u8 side;    /* enum usmc_side */
  __u8 reason;  /* enum usmc_reason */
};

/* Slots of the per-CPU statistics array. */
enum usmc_stat {
  USMC_STAT_CONNECT = 0,     /* active sockets seen at connect() */
  USMC_STAT_LISTEN,          /* listeners seen */
  USMC_STAT_SYN_WRITTEN,     /* option written on a SYN */
  USMC_STAT_SYNACK_WRITTEN,  /* option echoed on a SYN-ACK */
  USMC_STAT_SYNACK_COOKIE,   /* SYN-ACK in syncookie mode: no echo */
  USMC_STAT_SYNACK_NO_PEER,  /* SYN without the option: no echo */
  USMC_STAT_ACTIVE_EST,      /* client sockets established */
  USMC_STAT_PASSIVE_EST,     /* server sockets established */
  USMC_STAT_ACTIVE_CAPABLE,  /* ... of which the peer is capable */
  USMC_STAT_PASSIVE_CAPABLE, /* ... of which the peer is capable */
  USMC_STAT_WRITE_ERROR,     /* reserve/store of the option failed */
  USMC_STAT_STORAGE_ERROR,   /* no socket storage */
  USMC_STAT_HDR_OTHER,       /* option callbacks after the handshake */
  USMC_STAT_COUNT,
};

#endif /* USMC_BPF_USMC_SOCKOPS_H_ */
