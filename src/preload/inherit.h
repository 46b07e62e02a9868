// Carrying accelerated connections across exec.
//
// exec keeps fds without FD_CLOEXEC (an inetd-style server hands an accepted
// connection to the program it execs) but discards the preload's memory. Before
// exec, every accelerated connection that survives it is described in
// USMC_INHERIT — "ARENA_FD;FD,SEG_FD,SEG_ID,SEG_BYTES,SLOT,SIDE,OFFSET;..." —
// and the arena and segment memfds are kept open across the exec. The new
// image's preload maps them again at start-up and re-creates the Sockets; the
// arena record (holders, cursors, locks) is the same memory, so the connection
// goes on where it was. A handshake still under way is finished (or given up)
// before the exec, since the new image could not resume it.
//
// Invariant: nothing is adopted unless the fd is still a socket whose inode
// matches, and every number in the variable is bounds-checked against the
// memfds it names (the variable is environment input).
#ifndef USMC_PRELOAD_INHERIT_H_
#define USMC_PRELOAD_INHERIT_H_

#include <string>
#include <vector>

namespace usmc::preload {

// Before exec: the USMC_INHERIT value for the connections that survive it (""
// if none), with the memfds it names made inheritable. `undo` lists the fds
// whose FD_CLOEXEC must be restored if the exec fails (call ExecFailed).
std::string PrepareExec(std::vector<int>* undo);
void ExecFailed(const std::vector<int>& undo);

// At start-up of a new image: adopts what USMC_INHERIT describes and removes
// the variable.
void AdoptInherited();

}  // namespace usmc::preload

#endif  // USMC_PRELOAD_INHERIT_H_
