// The files through which code run inside another process (tidemark attach, detach, dump)
// hands results back, made so that nothing the target writes can steer what this program
// opens, copies, follows or deletes — the target's owner controls everything that runs in it,
// and this program often runs as root.
//
// A directory of this program's user, 0755, in the target's /tmp as the target sees it
// (reached through /proc/PID/root/tmp, opened without following a link), holds files this
// program created (O_EXCL, O_NOFOLLOW) and gave to the target's user, mode 0600. The target
// may only write into them: it cannot add, rename, replace or remove an entry of the
// directory, and this program reads them through the descriptors it opened when it made them,
// with a bound on what it reads. The target learns their paths from the code it runs; what
// it writes is data, never a path. Everything is removed through the directory's descriptor.
//
// Thread-safety: an Exchange is used by one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "snapshot/result.h"

namespace tidemark::cli {

class Exchange {
 public:
  // Makes the directory and the files `names` for process `pid`, whose user is uid:gid.
  static snapshot::Result<Exchange> Create(pid_t pid, uid_t uid, gid_t gid,
                                           const std::vector<std::string>& names);

  Exchange(Exchange&& other) noexcept;
  Exchange& operator=(Exchange&&) = delete;
  Exchange(const Exchange&) = delete;
  ~Exchange();

  // The path of file `name` as the target sees it ("/tmp/tidemark-attach-…/report.json").
  std::string TargetPath(const std::string& name) const;
  // Bytes the target has written to `name` so far.
  snapshot::Result<uint64_t> Size(const std::string& name) const;
  // Its whole content; kLimit past `limit` bytes (nothing is read then).
  snapshot::Result<std::string> Read(const std::string& name, uint64_t limit) const;
  // Its content copied to descriptor `out`; kLimit past `limit` bytes.
  snapshot::Result<uint64_t> CopyTo(const std::string& name, int out, uint64_t limit) const;
  // Takes an exclusive flock of `name` without waiting: true if taken (kept until the end).
  bool TryLock(const std::string& name) const;
  // Removes `name` from the directory (its descriptor here stays open).
  void Unlink(const std::string& name) const;

 private:
  Exchange() = default;
  snapshot::Result<int> Descriptor(const std::string& name) const;
  struct Bounded {
    int fd;
    uint64_t size;
  };
  // `name`'s descriptor and size; kLimit past `limit` bytes.
  snapshot::Result<Bounded> Within(const std::string& name, uint64_t limit) const;

  int tmp_ = -1, dir_ = -1;
  std::string name_;  // Of the directory, in the target's /tmp.
  std::map<std::string, int> files_;
};

}  // namespace tidemark::cli
