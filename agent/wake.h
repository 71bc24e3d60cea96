// Wake: how the reporter thread is woken, by a trigger (tidemark.trigger(), the optional
// signal handler), a graph request or a stop. No Python here.
//
// One eventfd per process, made the first time the reporter connects, never before: a child
// that has not lived through its probation has no descriptor of ours, so a daemonizing child
// may close every descriptor (os.closerange) without closing one we use. It is never below 3,
// and it is never closed in the process that made it, since a signal handler may write to it
// at any moment; a child closes the one it inherited (CloseInherited) before anything else runs
// in it. Every use first checks that the descriptor is still the eventfd made here (device and
// inode, fstat being async-signal-safe): one the program closed or replaced is forgotten,
// never written to, and Fd() makes another. Until the descriptor exists, a trigger is kept as
// a flag the reporter reads when it starts.
//
// Thread-safety: Trigger() and Poke() are async-signal-safe and may be called from any thread;
// Fd() from the reporter thread; CloseInherited() from the only thread of a new child.
#pragma once

namespace tidemark::agent::wake {

// The process's eventfd, made (close-on-exec, at 3 or above) on first call, and again if the
// program closed or replaced it. -1 if it cannot be made.
int Fd();

// Asks for a snapshot now: sets the trigger flag and wakes the reporter.
void Trigger();

// Wakes the reporter without asking for a snapshot (a stop, a graph request due).
void Poke();

// Clears the trigger flag and says whether it was set; drains the eventfd.
bool TakeTrigger();

// In a new child, right after fork: closes the eventfd inherited from the parent.
void CloseInherited();

// Forgets the eventfd without closing it: in a child of a fork this module did not see, the
// descriptor number may by now belong to the host.
void Forget();

}  // namespace tidemark::agent::wake
