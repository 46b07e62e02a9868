// epoll for a mix of plain and accelerated fds.
//
// An application epoll fd that ever holds an accelerated fd gets an EpollSet: a
// private inner epoll holding the accelerated fds' TCP sockets (for doorbells,
// FIN/RST and handshake progress), nested in the application's epoll under a
// random tag. Interest (events, data, ET/ONESHOT state) for those fds lives in
// the EpollSet; readiness is computed from the rings. Plain fds stay in the
// application's epoll untouched, so the kernel reports them as always.
#ifndef USMC_PRELOAD_EPOLL_H_
#define USMC_PRELOAD_EPOLL_H_

#include <signal.h>
#include <sys/epoll.h>

namespace usmc::preload {

class Socket;

int EpollCtl(int epfd, int op, int fd, epoll_event* ev);
int EpollWait(int epfd, epoll_event* events, int maxevents, int timeout_ms,
              const sigset_t* mask);
bool EpollIsManaged(int epfd);
void EpollClosed(int epfd);  // the application closed an epoll fd

// fd (of socket s) left usmc: re-register it natively, with the application's
// interest, in every set.
void EpollMakeNative(int fd, Socket* s);
// fd was closed: forget it in every set.
void EpollForget(int fd, Socket* s);

}  // namespace usmc::preload

#endif  // USMC_PRELOAD_EPOLL_H_
