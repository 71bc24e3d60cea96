// Making and keeping descriptors in someone else's process. The kernel hands out the lowest
// free number, so while the program has 0, 1 or 2 closed, a socket or file of ours lands there
// for a moment: a program that dup2()s its saved stderr back at that instant finds the number
// busy (EBUSY), or loses its file to us. So the agent makes descriptors as seldom as it can
// (the connection outlives fork(); the /proc and cgroup files read again and again are kept
// open), and moves every new one above 2 at once: the low number is closed only while it is
// still the one made here.
//
// Left open: a program thread that dup2()s onto the hole in the microseconds one of those rare
// descriptors is being made (a connection made again, a cgroup file, a forked child's own
// files).
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace tidemark::agent {

// `make` returns a new close-on-exec descriptor or -1 (errno set). The result is >= 3 or -1.
int MakeAboveStdio(const std::function<int()>& make);

// open(path, flags | O_CLOEXEC) by MakeAboveStdio.
int OpenAboveStdio(const char* path, int flags);

// The text of a small file (/proc, cgroup), at most `limit` bytes, opened by OpenAboveStdio
// and closed again; nullopt if it cannot be opened.
std::optional<std::string> ReadSmallFile(const char* path, size_t limit = 16 << 10);

// The same for a file read again and again (/proc/self/statm and status, /proc/meminfo, the
// cgroup's memory files): its descriptor is kept (one per path, at most 16 paths; past that a
// file is opened for each read) and read again from its start; it is made again only when the
// program closed or replaced it (checked by device and inode before every read: one that is
// not ours any more is forgotten, never closed), or when the path names another file now.
std::optional<std::string> ReadKeptFile(const std::string& path, size_t limit = 16 << 10);

// In a child after fork(), from the hook, before any other thread exists: the kept
// "/proc/self/..." files are the parent's; closed here, made again when next read.
void ForgetParentsProcFiles();

}  // namespace tidemark::agent
