#include "cli/attach_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <thread>

#include "cli/attach.h"

namespace tidemark::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Run in the target by exec() in a namespace of its own (nothing lands in __main__). RESULT,
// AGENT and the action's parameters are JSON literals, which are Python literals too.
constexpr const char* kPrelude = R"PY(
import json, os, sys
def _report(out):
    part = RESULT + ".part"
    with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        json.dump(out, f)
    os.rename(part, RESULT)
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
try:
    out = action(_import())
    out["ok"] = True
except BaseException as e:
    out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
_report(out)
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
    path = RESULT + ".tdmk"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(snap.encoded)
    return {"objects": snap.objects, "bytes": snap.bytes, "file": path}
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

std::string Nonce() {
  std::random_device random;
  std::ostringstream s;
  s << std::hex << random() << random();
  return s.str();
}

// A positive number of seconds, or `fallback` when the option is absent; a malformed one is
// reported and yields nullopt.
std::optional<double> Seconds(const Flags& flags, const std::string& option, double fallback,
                              std::ostream& err) {
  auto v = flags.value(option);
  if (!v) return fallback;
  char* end = nullptr;
  const double seconds = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end != '\0' || !(seconds > 0)) {
    err << "tidemark: " << option << ": not a positive number of seconds: '" << *v << "'\n";
    return std::nullopt;
  }
  return seconds;
}

// Injects `action` (with its parameters as Python globals) and returns what it reported.
snapshot::Result<Json> RunInTarget(const Flags& flags, const std::string& action,
                                   const Json& parameters, double timeout, Target* target_out) {
  const std::string& pid_text = flags.positional.at(0);
  char* end = nullptr;
  const long pid = std::strtol(pid_text.c_str(), &end, 10);
  if (*end != '\0' || pid <= 0) return snapshot::Fail("PID: not a process id: '" + pid_text + "'");
  auto target = InspectTarget(static_cast<pid_t>(pid));
  if (!target) return std::unexpected(target.error());
  *target_out = *target;
  auto agent = AgentDirectory(flags, *target);
  if (!agent) return std::unexpected(agent.error());
  const std::string result = "/tmp/tidemark-attach-" + std::to_string(pid) + "-" + Nonce();
  std::ostringstream source;
  source << "RESULT = " << Json(result + ".json").dump() << "\nAGENT = " << Json(*agent).dump()
         << "\n";
  for (const auto& [name, value] : parameters.items()) {
    source << name << " = "
           << (value.is_null()      ? "None"
               : value.is_boolean() ? (value ? "True" : "False")
                                    : value.dump())
           << "\n";
  }
  source << action << kPrelude;
  const std::string code =
      "exec(" + Json(source.str()).dump() + ", {'__name__': '__tidemark_attach__'})";
  auto where = Inject(*target, {.library = InjectLibrary(), .code = code, .timeout_s = timeout});
  if (!where) return std::unexpected(where.error());
  // The target reports once its new thread had the GIL and ran the code.
  const fs::path seen = "/proc/" + std::to_string(pid) + "/root" + result + ".json";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  std::error_code ec;
  while (!fs::exists(seen, ec)) {
    if (std::chrono::steady_clock::now() > deadline) {
      return snapshot::Fail(snapshot::Code::kLimit,
                            "injected (" + *where + ") but no report within " +
                                std::to_string(static_cast<int>(timeout)) +
                                " s: the interpreter did not hand over the GIL");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream in(seen);
  Json report = Json::parse(in, nullptr, false);
  fs::remove(seen, ec);
  if (report.is_discarded() || !report.is_object()) {
    return snapshot::Fail("the target's report is not JSON: " + seen.string());
  }
  report["injected"] = *where;
  if (!report.value("ok", false)) {
    return snapshot::Fail("in process " + std::to_string(pid) + ": " +
                          report.value("error", std::string("?")));
  }
  return report;
}

int Failed(const snapshot::Error& error, std::ostream& err) {
  err << "tidemark: " << error.message << "\n";
  return 1;
}

}  // namespace

int AttachCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  const auto timeout = Seconds(flags, "--timeout", 10, err);
  const auto interval = Seconds(flags, "--interval", 60, err);
  if (!timeout || !interval) return 2;
  Json parameters = {{"ENDPOINT", flags.value("--endpoint").value_or("tcp://127.0.0.1:7878")},
                     {"SERVICE", nullptr},
                     {"INTERVAL", nullptr},
                     {"LABELS", flags.value("--labels").value_or("")}};
  if (auto s = flags.value("--service")) parameters["SERVICE"] = *s;
  if (flags.has("--interval")) parameters["INTERVAL"] = *interval;
  Target target;
  auto report = RunInTarget(flags, kAttach, parameters, *timeout, &target);
  if (!report) return Failed(report.error(), err);
  if (flags.json) {
    out << report->dump() << "\n";
  } else if (report->value("already", false)) {
    out << "process " << target.pid << ": the agent was running already; nothing changed\n";
  } else {
    out << "process " << target.pid << " (Python " << target.major << "." << target.minor
        << "): agent started, sending to " << parameters["ENDPOINT"].get<std::string>() << " ("
        << (*report)["injected"].get<std::string>() << ")\n";
  }
  return 0;
}

int DetachCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  const auto timeout = Seconds(flags, "--timeout", 10, err);
  if (!timeout) return 2;
  Target target;
  auto report = RunInTarget(flags, kDetach, Json::object(), *timeout, &target);
  if (!report) return Failed(report.error(), err);
  if (flags.json) {
    out << report->dump() << "\n";
  } else {
    out << "process " << target.pid << ": agent "
        << (report->value("was_running", false) ? "stopped" : "was not running") << "\n";
  }
  return 0;
}

int DumpCommand(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto output = flags.value("--output");
  if (!output) {
    err << "tidemark: dump needs -o FILE\n";
    return 2;
  }
  Json parameters = {{"KIND", flags.has("--graph") ? "graph" : "summary"},
                     {"VALUES", flags.has("--values")}};
  const auto timeout = Seconds(flags, "--timeout", 10, err);
  if (!timeout) return 2;
  Target target;
  auto report = RunInTarget(flags, kDump, parameters, *timeout, &target);
  if (!report) return Failed(report.error(), err);
  // Handed back: read through /proc/PID/root, written here as this user, removed there.
  const fs::path theirs =
      "/proc/" + std::to_string(target.pid) + "/root" + (*report)["file"].get<std::string>();
  std::error_code ec;
  fs::copy_file(theirs, *output, fs::copy_options::overwrite_existing, ec);
  fs::remove(theirs);
  if (ec) {
    err << "tidemark: cannot write " << *output << ": " << ec.message() << "\n";
    return 1;
  }
  (*report)["file"] = *output;
  if (flags.json) {
    out << report->dump() << "\n";
  } else {
    out << *output << ": " << (*report)["objects"].get<uint64_t>() << " objects of process "
        << target.pid << " (" << (flags.has("--graph") ? "graph" : "summary") << ")\n";
  }
  return 0;
}

}  // namespace tidemark::cli
