#include "cli/attach.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace tidemark::cli {
namespace {

namespace fs = std::filesystem;
using snapshot::Code;
using snapshot::Fail;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The CPython version of a process from its executable's name or a libpython in its maps.
bool FindVersion(const std::string& text, const std::regex& pattern, Target* target,
                 bool* free_threaded) {
  std::smatch m;
  if (!std::regex_search(text, m, pattern)) return false;
  target->major = std::stoi(m[1]);
  target->minor = std::stoi(m[2]);
  *free_threaded = m[3].length() > 0;
  return true;
}

snapshot::Result<void> MayTrace(const Target& target) {
  const uid_t me = geteuid();
  if (me != 0 && target.uid != me) {
    return Fail(Code::kIo, "permission denied: process " + std::to_string(target.pid) +
                               " belongs to uid " + std::to_string(target.uid) +
                               "; run as root or as that user");
  }
  const std::string scope = ReadFile("/proc/sys/kernel/yama/ptrace_scope");
  if (scope.empty() || scope[0] == '0') return {};
  if (scope[0] == '3') {
    return Fail(Code::kIo, "kernel.yama.ptrace_scope is 3: no process may be traced");
  }
  if (me != 0) {
    return Fail(Code::kIo, "kernel.yama.ptrace_scope is " + scope.substr(0, 1) +
                               ": only root (or CAP_SYS_PTRACE) may trace process " +
                               std::to_string(target.pid) + "; or set it to 0");
  }
  return {};
}

}  // namespace

snapshot::Result<Target> InspectTarget(pid_t pid) {
  Target target;
  target.pid = pid;
  const fs::path proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  if (pid <= 0 || !fs::exists(proc / "status", ec)) {
    return Fail(Code::kNotFound, "no process " + std::to_string(pid));
  }
  target.executable = fs::read_symlink(proc / "exe", ec).string();
  std::istringstream status(ReadFile(proc / "status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Uid:", 0) == 0) target.uid = static_cast<uid_t>(std::stoul(line.substr(4)));
    if (line.rfind("Gid:", 0) == 0) target.gid = static_cast<gid_t>(std::stoul(line.substr(4)));
  }
  if (auto may = MayTrace(target); !may) return std::unexpected(may.error());
  bool free_threaded = false;
  static const std::regex exe(R"(python(\d)\.(\d+)(t?)$)");
  static const std::regex lib(R"(libpython(\d)\.(\d+)(t?)\.so)");
  if (!FindVersion(target.executable, exe, &target, &free_threaded) &&
      !FindVersion(ReadFile(proc / "maps"), lib, &target, &free_threaded)) {
    return Fail(Code::kInvalid, "process " + std::to_string(pid) + " (" +
                                    (target.executable.empty() ? "?" : target.executable) +
                                    ") is not Python: no pythonX.Y executable or libpythonX.Y");
  }
  const std::string version = std::to_string(target.major) + "." + std::to_string(target.minor);
  if (free_threaded) {
    return Fail(Code::kInvalid, "process " + std::to_string(pid) + " runs free-threaded Python " +
                                    version + "t, which tidemark does not support");
  }
  if (target.major != 3 || target.minor < 8 || target.minor > 13) {
    return Fail(Code::kInvalid, "process " + std::to_string(pid) + " runs Python " + version +
                                    "; tidemark supports 3.8 to 3.13");
  }
  return target;
}

}  // namespace tidemark::cli
