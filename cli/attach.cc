#include "cli/attach.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

namespace tidemark::cli {
namespace {

namespace fs = std::filesystem;
using snapshot::Code;
using snapshot::Fail;

// Run by gdb's Python (Debian's gdb has it). TM_PARAMS names a JSON file: library, code,
// timeout. Prints one line starting with TIDEMARK: what happened.
constexpr const char* kDriver = R"PY(
import gdb, json, os, signal, threading
params = json.load(open(os.environ["TM_PARAMS"]))
BLOCKING = ("nanosleep", "clock_nanosleep", "recv", "recvfrom", "recvmsg", "select", "pselect",
            "poll", "ppoll", "epoll_wait", "epoll_pwait", "accept", "accept4", "read", "pause",
            "wait4", "waitpid", "sigtimedwait", "futex_abstimed_wait", "futex_wait", "sem_wait",
            "pthread_cond_wait", "pthread_cond_timedwait")
SAFE = ("malloc", "free", "PyObject_Malloc", "PyObject_Free", "PyEval_SaveThread",
        "PyEval_RestoreThread")

def plain(name):
    name = name or ""
    for prefix in ("__GI_", "__libc_", "__", "_"):
        while name.startswith(prefix):
            name = name[len(prefix):]
    return name

def blocked_thread():
    for thread in gdb.selected_inferior().threads():
        thread.switch()
        name = plain(gdb.newest_frame().name())
        if name.startswith(BLOCKING):
            return thread, name
    return None, None

def inject(where):
    handle = int(gdb.parse_and_eval('(long)dlopen("%s", 2)' % params["library"]))
    if handle == 0:
        error = gdb.parse_and_eval("(char*)dlerror()").string()
        print("TIDEMARK failed: dlopen: %s" % error)
        return
    code = params["code"].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    rc = int(gdb.parse_and_eval('(int)tidemark_inject("%s")' % code))
    if rc != 0:
        print("TIDEMARK failed: the thread was not started (errno %d)" % rc)
    else:
        print("TIDEMARK injected: %s" % where)

gdb.execute("set pagination off")
gdb.execute("set confirm off")
thread, name = blocked_thread()
if thread is not None:
    inject("thread %d in %s" % (thread.ptid[1], name))
else:
    points = []
    for function in SAFE:
        try:
            points.append(gdb.Breakpoint(function, internal=True))
        except gdb.error:
            pass
    # Until one is reached, or the timer interrupts (gdb then stops the process again).
    timer = threading.Timer(params["timeout"], os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    gdb.execute("continue")
    timer.cancel()
    name = plain(gdb.newest_frame().name())
    reached = any(point.hit_count for point in points)
    for point in points:
        point.delete()
    if reached and name.startswith(SAFE):
        inject("breakpoint in %s" % name)
    else:
        print("TIDEMARK timeout: no safe point reached")
gdb.execute("detach")
)PY";

std::string Seconds(double s) {
  std::ostringstream out;
  out << s << " s";
  return out.str();
}

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

snapshot::Result<std::string> FindGdb() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path gdb = fs::path(dir) / "gdb";
    if (access(gdb.c_str(), X_OK) == 0) return gdb.string();
  }
  return Fail(Code::kNotFound, "no debugger: attaching uses gdb (apt-get install gdb)");
}

snapshot::Result<std::string> Inject(const Target& target, const InjectOptions& options) {
  auto gdb = FindGdb();
  if (!gdb) return std::unexpected(gdb.error());
  char dir_template[] = "/tmp/tidemark-gdb.XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return Fail(Code::kIo, "cannot make a temporary directory");
  const fs::path dir = dir_template;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  std::ofstream(dir / "driver.py") << kDriver;
  std::ofstream(dir / "params.json") << nlohmann::json{
      {"library", options.library},
      {"code", options.code},
      {"timeout", options.timeout_s}}.dump();
  const std::string log = (dir / "gdb.log").string();
  const pid_t child = fork();
  if (child < 0) return Fail(Code::kIo, "cannot start gdb");
  if (child == 0) {
    setenv("TM_PARAMS", (dir / "params.json").c_str(), 1);
    const std::string pid = std::to_string(target.pid);
    const std::string driver = (dir / "driver.py").string();
    FILE* out = freopen(log.c_str(), "w", stdout);
    if (out == nullptr || dup2(fileno(stdout), 2) < 0) _exit(127);
    // No gdbinit, no auto-loaded scripts, no debuginfod (no network), no debug information
    // (ELF symbols name every function it needs; reading DWARF took seconds): only the driver.
    execl(gdb->c_str(), "gdb", "-nx", "-batch", "--readnever", "-iex", "set auto-load off", "-iex",
          "set debuginfod enabled off", "-p", pid.c_str(), "-x", driver.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options.timeout_s));
  // The driver keeps its own timeout (only once its breakpoints are in): this is the last
  // resort for a gdb that hangs, past which it is killed (the kernel then detaches it).
  int status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline + std::chrono::seconds(60)) kill(child, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string output = ReadFile(log);
  std::smatch m;
  static const std::regex said(R"(TIDEMARK (injected|failed|timeout): ([^\n]*))");
  if (std::regex_search(output, m, said)) {
    if (m[1] == "injected") return m[2].str();
    if (m[1] == "timeout") {
      return Fail(Code::kLimit, "no safe point reached in " + Seconds(options.timeout_s) +
                                    ": the process runs code that neither allocates nor "
                                    "waits; it was left untouched");
    }
    return Fail(Code::kIo, "injection failed: " + m[2].str());
  }
  if (output.find("ptrace: Operation not permitted") != std::string::npos) {
    return Fail(Code::kIo, "gdb may not trace process " + std::to_string(target.pid) +
                               " (ptrace: Operation not permitted): in a container, it needs "
                               "CAP_SYS_PTRACE and the target's PID namespace");
  }
  std::string last = output.substr(output.size() > 400 ? output.size() - 400 : 0);
  return Fail(Code::kIo, "gdb did not inject (exit status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                             "): " + last);
}

}  // namespace tidemark::cli
