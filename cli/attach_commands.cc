#include "cli/attach_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <expected>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <thread>

#include "cli/attach.h"
#include "cli/exchange.h"
#include "cli/injector.h"

namespace tidemark::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Run in the target by exec() in a namespace of its own (nothing lands in __main__), on the
// thread libtidemark_inject.so started, once it has the GIL. STARTED, REPORT, AGENT and the
// action's parameters are JSON literals, which are Python literals too. The files were made by
// the CLI (cli/exchange.h): the code only writes into them. It first takes a lock on STARTED:
// if the CLI took it first (it stopped waiting for the GIL), or STARTED is gone, nothing runs.
// Every exception stays here: nothing reaches the host's stderr.
constexpr const char* kPrelude = R"PY(
import os, sys
def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
def _import():
    try:
        import tidemark
        return tidemark
    except ImportError:
        if not AGENT:
            raise
    sys.path.insert(0, AGENT)
    try:
        import tidemark
        return tidemark
    finally:
        sys.path.remove(AGENT)
def _main():
    import fcntl, json
    lock = os.open(STARTED, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(lock, b"1")
        try:
            out = action(_import())
            out["ok"] = True
        except BaseException as e:
            out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        _write(REPORT, (json.dumps(out) + "\n").encode())
    finally:
        os.close(lock)
try:
    _main()
except BaseException:
    pass
)PY";

constexpr const char* kAttach = R"PY(
def action(tidemark):
    if tidemark.status().get("running"):
        return {"already": True}
    tidemark.start(ENDPOINT, service=SERVICE, interval=INTERVAL, labels=LABELS)
    return {"already": False, "service": SERVICE}
)PY";

constexpr const char* kDetach = R"PY(
def action(tidemark):
    running = bool(tidemark.status().get("running"))
    tidemark.stop()
    return {"was_running": running}
)PY";

constexpr const char* kDump = R"PY(
def action(tidemark):
    snap = tidemark.snapshot(kind=KIND, values=VALUES)
    _write(SNAPSHOT, snap.encoded)
    return {"objects": snap.objects, "bytes": snap.bytes, "length": len(snap.encoded)}
)PY";

fs::path OwnDirectory() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path();
}

// libtidemark_inject.so: TIDEMARK_INJECT_LIB, else next to this program (build tree, install).
std::string InjectLibrary() {
  if (const char* env = std::getenv("TIDEMARK_INJECT_LIB")) return env;
  const fs::path here = OwnDirectory();
  for (const fs::path& p :
       {here / "../agent/libtidemark_inject.so", here / "../lib/tidemark/libtidemark_inject.so"}) {
    std::error_code ec;
    if (fs::exists(p, ec)) return fs::canonical(p, ec).string();
  }
  return "libtidemark_inject.so";  // dlopen searches the target's library path.
}

// The directory to import tidemark from if the target cannot, for the target's version; ""
// when none is configured. An error if one is, without a module for that version.
snapshot::Result<std::string> AgentDirectory(const Flags& flags, const Target& target) {
  std::string dir;
  if (auto v = flags.value("--agent")) {
    dir = *v;
  } else if (const char* env = std::getenv("TIDEMARK_AGENT_PATH")) {
    dir = env;
  } else if (std::error_code ec; fs::exists(OwnDirectory() / "../python", ec)) {
    dir = (OwnDirectory() / "../python").string();
  }
  if (dir.empty()) return std::string();
  const std::string xy = std::to_string(target.major) + std::to_string(target.minor);
  fs::path base = dir;
  if (std::error_code ec; fs::exists(base / ("py" + xy) / "tidemark", ec)) base /= "py" + xy;
  const std::string module = "_native.cpython-" + xy + "-x86_64-linux-gnu.so";
  std::error_code ec;
  if (!fs::exists(base / "tidemark" / module, ec)) {
    return snapshot::Fail(snapshot::Code::kNotFound,
                          "no agent for Python " + std::to_string(target.major) + "." +
                              std::to_string(target.minor) + " in " + dir + " (looked for " +
                              (base / "tidemark" / module).string() + "); nothing was injected");
  }
  return fs::canonical(base, ec).string();
}

// A positive number of seconds, or `fallback` when the option is absent; a malformed one is
// reported and yields nullopt.
std::optional<double> Seconds(const Flags& flags, const std::string& option, double fallback,
                              std::ostream& err) {
  auto v = flags.value(option);
  if (!v) return fallback;
  char* end = nullptr;
  const double seconds = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end != '\0' || !(seconds > 0) || seconds > 86400) {
    err << "tidemark: " << option << ": not a number of seconds (more than 0, at most 86400): '"
        << *v << "'\n";
    return std::nullopt;
  }
  return seconds;
}

// The exit codes of attach, detach and dump (docs/agent.md, "Exit codes").
enum Exit { kDone = 0, kFailed = 1, kUsage = 2, kUncertain = 3 };

// A failure: what to say, and whether the process was left as it was.
struct Failure {
  explicit Failure(std::string m, Exit e = kFailed, std::vector<std::string> d = {})
      : message(std::move(m)), exit(e), detail(std::move(d)) {}
  std::string message;
  Exit exit;
  std::vector<std::string> detail;
};

constexpr const char* kStarted = "started";
constexpr const char* kReport = "report.json";
constexpr const char* kSnapshot = "snapshot.tdmk";
constexpr uint64_t kMaxReport = 1 << 20;
constexpr uint64_t kMaxSnapshot = uint64_t{4} << 30;
// How long the code may run once it has the GIL (a graph snapshot of a very large heap).
constexpr auto kMaxRun = std::chrono::minutes(10);

// The code for the target: the files' paths and the parameters as globals, then the action.
std::string TargetCode(const Exchange& exchange, const std::string& agent,
                       const std::string& action, const Json& parameters, bool dump) {
  std::ostringstream source;
  source << "STARTED = " << Json(exchange.TargetPath(kStarted)).dump()
         << "\nREPORT = " << Json(exchange.TargetPath(kReport)).dump()
         << "\nSNAPSHOT = " << (dump ? Json(exchange.TargetPath(kSnapshot)).dump() : "None")
         << "\nAGENT = " << Json(agent).dump() << "\n";
  for (const auto& [name, value] : parameters.items()) {
    source << name << " = "
           << (value.is_null()      ? "None"
               : value.is_boolean() ? (value ? "True" : "False")
                                    : value.dump())
           << "\n";
  }
  source << action << kPrelude;
  return "exec(" + Json(source.str()).dump() + ", {'__name__': '__tidemark_attach__'})";
}

// Waits for the code to take the GIL within `budget` of `injected`, then for its report.
std::expected<Json, Failure> AwaitReport(const Exchange& exchange, pid_t pid, double budget,
                                         std::chrono::steady_clock::time_point injected,
                                         std::ostream& err) {
  using Clock = std::chrono::steady_clock;
  const auto gil = injected + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(budget + 1));
  const std::string who = "process " + std::to_string(pid);
  std::ostringstream seconds;
  seconds << budget;
  while (exchange.Size(kStarted).value_or(0) == 0 && Clock::now() < gil) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (exchange.Size(kStarted).value_or(0) == 0 && exchange.TryLock(kStarted)) {
    return std::unexpected(Failure{
        who + ": the interpreter did not hand over the GIL within " + seconds.str() +
        " s (a thread holds it without pausing: a long C call?). Nothing ran, and nothing will: "
        "the thread tidemark started ends without running anything when it gets the GIL"});
  }
  const auto until = Clock::now() + kMaxRun;
  bool said = false;
  for (;;) {
    auto text = exchange.Read(kReport, kMaxReport);
    if (!text) return std::unexpected(Failure{who + ": " + text.error().message, kUncertain});
    if (!text->empty() && text->back() == '\n') {
      Json report = Json::parse(*text, nullptr, false);
      if (report.is_object()) return report;
      return std::unexpected(Failure{who + ": its report is not a JSON object", kUncertain});
    }
    if (exchange.TryLock(kStarted)) {
      return std::unexpected(
          Failure{who + ": the code started but ended without a report", kUncertain});
    }
    if (Clock::now() > until) {
      return std::unexpected(Failure{who + ": the code started but did not finish in 10 "
                                           "minutes; it may still finish",
                                     kUncertain});
    }
    if (!said && Clock::now() > injected + std::chrono::seconds(3)) {
      err << "tidemark: " << who << " is working (a large heap takes a while)...\n";
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Injects `action` (with its parameters as Python globals) and returns what it reported; for
// dump, the snapshot is left in `exchange` (kSnapshot).
std::expected<Json, Failure> RunInTarget(const Flags& flags, const std::string& action,
                                         const Json& parameters, double timeout, bool dump,
                                         Target* target_out, std::optional<Exchange>* exchange_out,
                                         std::ostream& err) {
  const std::string& pid_text = flags.positional.at(0);
  char* end = nullptr;
  const long pid = std::strtol(pid_text.c_str(), &end, 10);
  if (*end != '\0' || pid <= 0 || pid > INT32_MAX) {
    return std::unexpected(Failure{"PID: not a process id: '" + pid_text + "'", kUsage});
  }
  const char* fault = std::getenv("TIDEMARK_ATTACH_FAULT");
  if (fault != nullptr && *fault != '\0' &&
      std::find(kFaultSteps.begin(), kFaultSteps.end(), fault) == kFaultSteps.end()) {
    std::string steps;
    for (const std::string& step : kFaultSteps) steps += (steps.empty() ? "" : ", ") + step;
    return std::unexpected(Failure("TIDEMARK_ATTACH_FAULT (a test seam): no step '" +
                                       std::string(fault) + "'; the steps: " + steps,
                                   kUsage));
  }
  auto target = InspectTarget(static_cast<pid_t>(pid));
  if (!target) return std::unexpected(Failure{target.error().message});
  *target_out = *target;
  auto agent = AgentDirectory(flags, *target);
  if (!agent) return std::unexpected(Failure{agent.error().message});
  std::vector<std::string> files = {kStarted, kReport};
  if (dump) files.push_back(kSnapshot);
  auto exchange = Exchange::Create(target->pid, target->uid, target->gid, files);
  if (!exchange) return std::unexpected(Failure{exchange.error().message});
  if (flags.has("--verbose")) {
    err << "tidemark:   exchange directory " << exchange->TargetPath("") << " (in the target's "
        << "file system)\n";
  }
  InjectRequest request{.pid = target->pid,
                        .library = InjectLibrary(),
                        .code = TargetCode(*exchange, *agent, action, parameters, dump),
                        .gil_budget_ms = static_cast<int64_t>(timeout * 1000),
                        .timeout_s = timeout,
                        .fault = fault ? fault : ""};
  auto injected = InjectCall(request);
  const auto at = std::chrono::steady_clock::now();
  if (!injected) {
    const InjectFailure& f = injected.error();
    return std::unexpected(Failure{"process " + std::to_string(pid) + ": " + f.step + ": " +
                                       f.reason +
                                       (f.intact ? ". The process was left as it was."
                                                 : ". The process may have been changed."),
                                   f.intact ? kFailed : kUncertain, f.detail});
  }
  if (flags.has("--verbose")) {
    for (const std::string& line : injected->detail) err << "tidemark:   " << line << "\n";
  }
  auto report = AwaitReport(*exchange, target->pid, timeout, at, err);
  if (!report) return report;
  (*report)["injected"] = injected->where;
  if (!report->value("ok", false)) {
    return std::unexpected(Failure{"in process " + std::to_string(pid) + ": " +
                                   report->value("error", std::string("?"))});
  }
  exchange_out->emplace(std::move(*exchange));
  return report;
}

int Failed(const Flags& flags, const Failure& failure, std::ostream& out, std::ostream& err) {
  err << "tidemark: " << failure.message << "\n";
  if (flags.has("--verbose")) {
    for (const std::string& line : failure.detail) err << "tidemark:   " << line << "\n";
  }
  if (flags.json) {
    out << Json{{"ok", false}, {"error", failure.message}, {"exit", failure.exit}}.dump() << "\n";
  }
  return failure.exit;
}

}  // namespace

int AttachCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  const auto timeout = Seconds(flags, "--timeout", 10, err);
  const auto interval = Seconds(flags, "--interval", 60, err);
  if (!timeout || !interval) return kUsage;
  Json parameters = {{"ENDPOINT", flags.value("--endpoint").value_or("tcp://127.0.0.1:7878")},
                     {"SERVICE", nullptr},
                     {"INTERVAL", nullptr},
                     {"LABELS", flags.value("--labels").value_or("")}};
  if (auto s = flags.value("--service")) parameters["SERVICE"] = *s;
  if (flags.has("--interval")) parameters["INTERVAL"] = *interval;
  Target target;
  std::optional<Exchange> exchange;
  auto report = RunInTarget(flags, kAttach, parameters, *timeout, false, &target, &exchange, err);
  if (!report) return Failed(flags, report.error(), out, err);
  if (flags.json) {
    out << report->dump() << "\n";
  } else if (report->value("already", false)) {
    out << "process " << target.pid << ": the agent was running already; nothing changed\n";
  } else {
    out << "process " << target.pid << " (Python " << target.major << "." << target.minor
        << "): agent started, sending to " << parameters["ENDPOINT"].get<std::string>() << " ("
        << (*report)["injected"].get<std::string>() << ")\n";
  }
  return kDone;
}

int DetachCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  const auto timeout = Seconds(flags, "--timeout", 10, err);
  if (!timeout) return kUsage;
  Target target;
  std::optional<Exchange> exchange;
  auto report =
      RunInTarget(flags, kDetach, Json::object(), *timeout, false, &target, &exchange, err);
  if (!report) return Failed(flags, report.error(), out, err);
  if (flags.json) {
    out << report->dump() << "\n";
  } else {
    out << "process " << target.pid << ": agent "
        << (report->value("was_running", false) ? "stopped" : "was not running") << "\n";
  }
  return kDone;
}

int DumpCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto output = flags.value("--output");
  if (!output) {
    err << "tidemark: dump needs -o FILE\n";
    return kUsage;
  }
  Json parameters = {{"KIND", flags.has("--graph") ? "graph" : "summary"},
                     {"VALUES", flags.has("--values")}};
  const auto timeout = Seconds(flags, "--timeout", 10, err);
  if (!timeout) return kUsage;
  Target target;
  std::optional<Exchange> exchange;
  auto report = RunInTarget(flags, kDump, parameters, *timeout, true, &target, &exchange, err);
  if (!report) return Failed(flags, report.error(), out, err);
  // Handed back through the file this program made and holds open; written to FILE as this
  // program's user. The report's length is the target's word: it must match what is there.
  const uint64_t length = report->value("length", uint64_t{0});
  auto size = exchange->Size(kSnapshot);
  if (!size || *size != length || length == 0) {
    return Failed(flags,
                  Failure{"process " + std::to_string(target.pid) + ": the snapshot it wrote (" +
                          std::to_string(size.value_or(0)) + " bytes) is not the " +
                          std::to_string(length) + " bytes it reported"},
                  out, err);
  }
  const int fd = open(output->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    return Failed(flags, Failure{"cannot write '" + *output + "': " + std::strerror(errno)}, out,
                  err);
  }
  auto copied = exchange->CopyTo(kSnapshot, fd, kMaxSnapshot);
  const bool closed = close(fd) == 0;
  if (!copied || !closed || *copied != length) {
    unlink(output->c_str());
    return Failed(flags,
                  Failure{"cannot write '" + *output + "': " +
                          (copied ? std::string(std::strerror(errno)) : copied.error().message)},
                  out, err);
  }
  Json result = {{"ok", true},
                 {"file", *output},
                 {"objects", report->value("objects", uint64_t{0})},
                 {"bytes", report->value("bytes", uint64_t{0})},
                 {"length", length},
                 {"injected", (*report)["injected"]}};
  if (flags.json) {
    out << result.dump() << "\n";
  } else {
    out << *output << ": " << result["objects"].get<uint64_t>() << " objects of process "
        << target.pid << " (" << (flags.has("--graph") ? "graph" : "summary") << ")\n";
  }
  return kDone;
}

}  // namespace tidemark::cli
