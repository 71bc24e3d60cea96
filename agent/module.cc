// tidemark._native: the CPython extension module behind the `tidemark` package.
//
// Thin glue: argument parsing and conversion to and from Python objects. The walk is in
// walker.cc, taking a snapshot in take.cc, the agent's states across start, stop and fork in
// lifecycle.cc, the thread in reporter.cc.
//
// Thread-safety: every function here is called with the GIL held.
#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "agent/endpoints.h"
#include "agent/lifecycle.h"
#include "agent/notice.h"
#include "agent/result.h"
#include "agent/sampler.h"
#include "agent/take.h"
#include "agent/walker.h"
#include "snapshot/clock.h"
#include "snapshot/wire.h"

namespace tidemark::agent {
namespace {

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

bool ParseStringList(PyObject* seq, std::vector<std::string>* out) {
  if (seq == nullptr || seq == Py_None) return true;
  PyObject* fast = PySequence_Fast(seq, "expected a sequence of str");
  if (fast == nullptr) return false;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
    const char* s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
    if (s == nullptr) {
      Py_DECREF(fast);
      return false;
    }
    out->emplace_back(s);
  }
  Py_DECREF(fast);
  return true;
}

bool ParseLabels(PyObject* labels, std::vector<std::pair<std::string, std::string>>* out) {
  if (labels == nullptr || labels == Py_None) return true;
  if (!PyDict_Check(labels)) {
    PyErr_SetString(PyExc_TypeError, "labels must be a dict of str to str");
    return false;
  }
  Py_ssize_t pos = 0;
  PyObject *k, *v;
  while (PyDict_Next(labels, &pos, &k, &v)) {
    const char* ks = PyUnicode_AsUTF8(k);
    const char* vs = ks ? PyUnicode_AsUTF8(v) : nullptr;
    if (vs == nullptr) return false;
    out->emplace_back(ks, vs);
  }
  return true;
}

bool RefuseUnsupportedInterpreter() {
  if (!tm_is_main_interpreter()) {
    PyErr_SetString(PyExc_RuntimeError, "tidemark runs only in the main interpreter");
    return true;
  }
  return false;
}

// Rows emptied by folding instance dicts are left out unless `keep_all` (graph type indices).
PyObject* TypesToList(const std::vector<snapshot::TypeStat>& types) {
  PyObject* list = PyList_New(0);
  for (const auto& t : types) {
    PyObject* row = Py_BuildValue("(sKKK)", t.name.c_str(), (unsigned long long)t.count,
                                  (unsigned long long)t.bytes, (unsigned long long)t.max_bytes);
    if (row == nullptr || PyList_Append(list, row) != 0) {
      Py_XDECREF(row);
      Py_DECREF(list);
      return nullptr;
    }
    Py_DECREF(row);
  }
  return list;
}

// The walk options snapshot() and start() share. `sizers` may be None; it is checked and
// its keys become the types to list for it. False with a Python error set on bad input.
bool ParseWalkOptions(int values, long long max_refs, PyObject* exclude, long long max_objects,
                      double max_pause_ms, PyObject** sizers, WalkOptions* options) {
  if (*sizers == Py_None) *sizers = nullptr;
  if (*sizers != nullptr && !PyDict_Check(*sizers)) {
    PyErr_SetString(PyExc_TypeError, "sizers must be a dict of type name to callable");
    return false;
  }
  options->values = values != 0;
  options->max_refs = max_refs;
  options->max_objects = static_cast<uint64_t>(max_objects);
  options->max_pause_ms = max_pause_ms;
  return ParseStringList(exclude, &options->exclude_types) &&
         (*sizers == nullptr || ParseStringList(*sizers, &options->sized_types));
}

// isolation ("inline", "fork", "auto"), the child's memory cap and deadline, the bound on an
// inline walk that replaces a fork (seconds). False with a Python error naming the argument on
// bad input.
bool ParseIsolationSettings(const char* isolation, long long child_memory, double child_timeout,
                            double max_inline_pause, IsolationSettings* settings) {
  const auto mode = ParseIsolation(isolation);
  if (!mode) {
    PyErr_Format(PyExc_ValueError, "isolation must be 'auto', 'fork' or 'inline', not '%s'",
                 isolation);
    return false;
  }
  if (child_memory != 0 && child_memory < (1 << 20)) {
    PyErr_SetString(PyExc_ValueError, "child_memory must be 'auto' (0) or at least 1 MiB");
    return false;
  }
  if (!(child_timeout > 0)) {
    PyErr_SetString(PyExc_ValueError, "child_timeout must be a positive number of seconds");
    return false;
  }
  settings->mode = *mode;
  settings->child_max_bytes = static_cast<size_t>(child_memory);
  if (!(max_inline_pause > 0)) {
    PyErr_SetString(PyExc_ValueError, "max_inline_pause must be a positive number of seconds");
    return false;
  }
  settings->child_timeout_s = child_timeout;
  settings->max_inline_pause_ms = max_inline_pause * 1e3;
  return true;
}

// An encoded message with this identity and sequence number, and its type table: a child's
// message is decoded for it. Needs no GIL.
snapshot::Result<std::string> Identify(snapshot::Result<Taken> taken, snapshot::Identity identity,
                                       uint64_t seq, std::vector<snapshot::TypeStat>* types) {
  snapshot::Header& h = taken->snapshot.header;
  h.identity = std::move(identity);
  h.seq = seq;
  if (taken->encoded.empty()) {
    auto message = snapshot::Encode(taken->snapshot);
    *types = std::move(taken->snapshot.types);
    return message;
  }
  auto message = snapshot::ReplaceHeader(taken->encoded, h);
  if (!message) return message;
  auto decoded = snapshot::Decode(*message);
  if (!decoded) return snapshot::Fail("snapshot child's message: ", decoded.error());
  *types = std::move(decoded->types);
  return message;
}

// take(kind, values, max_refs, exclude, max_objects, max_pause_ms, service, labels, seq)
PyObject* Take(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"kind",          "values",           "max_refs",  "exclude",
                                   "max_objects",   "max_pause_ms",     "service",   "labels",
                                   "seq",           "sizers",           "isolation", "child_memory",
                                   "child_timeout", "max_inline_pause", nullptr};
  const char* kind = "summary";
  int values = 0;
  long long max_refs = -1, max_objects = 0, seq = 1, child_memory = 0;
  double max_pause_ms = 0, child_timeout = 60, max_inline_pause = 0.2;
  PyObject *exclude = nullptr, *labels = nullptr, *sizers = nullptr;
  const char* service = "python";
  const char* isolation = "auto";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|spLOLdsOLOsLdd", const_cast<char**>(keywords),
                                   &kind, &values, &max_refs, &exclude, &max_objects, &max_pause_ms,
                                   &service, &labels, &seq, &sizers, &isolation, &child_memory,
                                   &child_timeout, &max_inline_pause)) {
    return nullptr;
  }
  if (RefuseUnsupportedInterpreter()) return nullptr;
  WalkOptions options;
  IsolationSettings isolation_settings;
  if (!ParseWalkOptions(values, max_refs, exclude, max_objects, max_pause_ms, &sizers, &options) ||
      !ParseIsolationSettings(isolation, child_memory, child_timeout, max_inline_pause,
                              &isolation_settings)) {
    return nullptr;
  }
  const std::string kind_name = kind;
  if (kind_name == "graph") {
    options.kind = snapshot::Kind::kGraph;
  } else if (kind_name != "summary") {
    PyErr_Format(PyExc_ValueError, "kind must be 'summary' or 'graph', not '%s'", kind);
    return nullptr;
  }
  snapshot::Identity identity;
  identity.service = service;
  identity.host = HostName();
  identity.pid = getpid();
  identity.start_time_ns = InstanceStartNs();
  if (!ParseLabels(labels, &identity.labels)) return nullptr;
  if (tm_gc_collecting()) {
    PyErr_SetString(PyExc_RuntimeError, "cannot take a snapshot while the garbage collector runs");
    return nullptr;
  }

  long long gc_before[3];
  tm_gc_counts(gc_before);
  TakeReport report;
  snapshot::Result<Taken> taken = TakeFromPython(options, sizers, isolation_settings, &report);
  const uint64_t objects = taken ? taken->snapshot.header.objects : 0;
  const uint64_t bytes = taken ? taken->snapshot.header.bytes : 0;
  // Everything Python-visible is built after the walk, never during it.
  snapshot::Result<std::string> encoded;
  std::vector<snapshot::TypeStat> types;
  double encode_ms = 0;
  Py_BEGIN_ALLOW_THREADS {
    const auto start = std::chrono::steady_clock::now();
    encoded =
        taken ? Identify(std::move(taken), std::move(identity), static_cast<uint64_t>(seq), &types)
              : std::unexpected(taken.error());
    encode_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  Py_END_ALLOW_THREADS if (!encoded) {
    PyErr_SetString(PyExc_RuntimeError, encoded.error().message.c_str());
    return nullptr;
  }
  PyObject* result = NewResult(std::move(*encoded), types);
  if (result == nullptr) return nullptr;
  return Py_BuildValue(
      "{s:N,s:K,s:K,s:d,s:d,s:O,s:s,s:K,s:[LLL],s:s,s:K}", "result", result, "objects",
      (unsigned long long)objects, "bytes", (unsigned long long)bytes, "pause_ms", report.pause_ms,
      "encode_ms", encode_ms, "abandoned", report.abandoned ? Py_True : Py_False, "reason",
      report.abandon_reason.c_str(), "references", (unsigned long long)report.references,
      "gc_before", gc_before[0], gc_before[1], gc_before[2], "isolation", report.why.c_str(),
      "sizers_skipped", (unsigned long long)report.sizers_skipped);
}

// The memory limit watch (agent/memory_limit.h). False with a ValueError set.
bool ParseMemorySettings(long long rss_limit, const char* thresholds, double check_s,
                         const char* cgroup_dir, ReporterConfig* config) {
  std::string error;
  auto percents = ParseThresholds(thresholds, &error);
  if (!percents) {
    PyErr_Format(PyExc_ValueError, "memory_thresholds: %s", error.c_str());
    return false;
  }
  if (rss_limit < 0 || !(check_s >= 0)) {
    PyErr_SetString(PyExc_ValueError, "memory_limit and memory_check must be 0 or more");
    return false;
  }
  config->memory.rss_limit = static_cast<uint64_t>(rss_limit);
  config->memory.cgroup_dir = cgroup_dir;
  config->memory_thresholds = std::move(*percents);
  config->memory_check_s = check_s;
  return true;
}

PyObject* Start(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"endpoint",
                                   "service",
                                   "labels",
                                   "interval",
                                   "graph_every",
                                   "values",
                                   "max_refs",
                                   "exclude",
                                   "max_objects",
                                   "max_pause_ms",
                                   "budget_bytes",
                                   "signal",
                                   "curve_server_key",
                                   "curve_public_key",
                                   "curve_secret_key",
                                   "sizers",
                                   "graph_request_interval",
                                   "watch",
                                   "probation",
                                   "max_overhead",
                                   "warn_after",
                                   "isolation",
                                   "child_memory",
                                   "child_timeout",
                                   "memory_limit",
                                   "memory_thresholds",
                                   "memory_check",
                                   "cgroup_dir",
                                   "failover",
                                   "home_retry",
                                   "max_inline_pause",
                                   nullptr};
  const char* endpoint;
  const char* service;
  PyObject *labels = nullptr, *exclude = nullptr;
  double interval = 60, max_pause_ms = 0;
  int graph_every = 0, values = 0, signum = 0;
  long long max_refs = -1, max_objects = 0, budget = 64ll << 20;
  const char *server_key = "", *public_key = "", *secret_key = "";
  PyObject* sizers = nullptr;
  double graph_request_interval = 5, probation = 0, max_overhead = 0.01, warn_after = 300;
  const char* watch = "all";
  const char* isolation = "auto";
  long long child_memory = 0;
  double child_timeout = 60, max_inline_pause = 0.2;
  long long memory_limit = 0;
  const char* memory_thresholds = "80,90";
  double memory_check = 1;
  const char* cgroup_dir = "";
  double failover = 30, home_retry = 120;
  if (!PyArg_ParseTupleAndKeywords(
          args, kwargs, "ss|OdipLOLdLisssOdsdddsLdLsdsddd", const_cast<char**>(keywords), &endpoint,
          &service, &labels, &interval, &graph_every, &values, &max_refs, &exclude, &max_objects,
          &max_pause_ms, &budget, &signum, &server_key, &public_key, &secret_key, &sizers,
          &graph_request_interval, &watch, &probation, &max_overhead, &warn_after, &isolation,
          &child_memory, &child_timeout, &memory_limit, &memory_thresholds, &memory_check,
          &cgroup_dir, &failover, &home_retry, &max_inline_pause)) {
    return nullptr;
  }
  if (RefuseUnsupportedInterpreter()) return nullptr;
  AgentSettings settings;
  if (!ParseWalkOptions(values, max_refs, exclude, max_objects, max_pause_ms, &sizers,
                        &settings.walk) ||
      !ParseIsolationSettings(isolation, child_memory, child_timeout, max_inline_pause,
                              &settings.isolation)) {
    return nullptr;
  }
  if (!(interval > 0)) {
    PyErr_SetString(PyExc_ValueError, "interval must be a positive number of seconds");
    return nullptr;
  }
  const std::string watch_name = watch;
  if (watch_name == "all") {
    settings.watch = Watch::kAll;
  } else if (watch_name == "children") {
    settings.watch = Watch::kChildren;
  } else if (watch_name == "parent") {
    settings.watch = Watch::kParent;
  } else {
    PyErr_Format(PyExc_ValueError, "watch must be 'all', 'children' or 'parent', not '%s'", watch);
    return nullptr;
  }
  ReporterConfig& config = settings.reporter;
  const std::vector<std::string> endpoints = SplitEndpoints(endpoint);
  if (endpoints.empty()) {
    PyErr_SetString(PyExc_ValueError, "endpoint names no collector");
    return nullptr;
  }
  if (!(failover > 0) || !(home_retry > 0)) {
    PyErr_SetString(PyExc_ValueError, "failover and home_retry must be positive seconds");
    return nullptr;
  }
  config.connection.endpoint = endpoints.front();
  if (endpoints.size() > 1) config.endpoints = endpoints;
  config.failover_s = failover;
  config.home_retry_s = home_retry;
  config.connection.unacked_budget_bytes = static_cast<size_t>(budget);
  config.connection.curve_server_key = server_key;
  config.connection.curve_public_key = public_key;
  config.connection.curve_secret_key = secret_key;
  config.identity.service = service;
  config.identity.host = HostName();
  config.identity.pid = getpid();
  config.identity.start_time_ns = snapshot::WallNowNs();
  if (!ParseLabels(labels, &config.identity.labels)) return nullptr;
  config.interval_s = interval;
  config.graph_every = graph_every;
  config.graph_request_interval_s = graph_request_interval;
  if (!(max_overhead >= 0 && max_overhead < 1)) {
    PyErr_SetString(PyExc_ValueError, "max_overhead must be a fraction from 0 to below 1");
    return nullptr;
  }
  config.max_overhead = max_overhead;
  if (!(warn_after > 0)) {
    PyErr_SetString(PyExc_ValueError, "warn_after must be a positive number of seconds");
    return nullptr;
  }
  config.warn_after_s = warn_after;
  if (!ParseMemorySettings(memory_limit, memory_thresholds, memory_check, cgroup_dir, &config)) {
    return nullptr;
  }
  config.notice = LogNotice;
  settings.probation_s = probation;
  settings.signal_number = signum;
  settings.sizers = sizers;
  if (!StartAgent(std::move(settings))) return nullptr;
  Py_RETURN_NONE;
}

PyObject* Stop(PyObject*, PyObject*) {
  StopAgent();
  Py_RETURN_NONE;
}

PyObject* Trigger(PyObject*, PyObject*) {
  TriggerAgent();
  Py_RETURN_NONE;
}

PyObject* IsolationStatus() {
  const IsolationFigures i = Policy().figures();
  return Py_BuildValue(
      "{s:K,s:K,s:K,s:K,s:K,s:K,s:s,s:s,s:d,s:d,s:d,s:d,s:K,s:K,s:K}", "inline_walks",
      (unsigned long long)i.inline_walks, "fork_walks", (unsigned long long)i.fork_walks,
      "fork_refused", (unsigned long long)i.fork_refused, "child_failed",
      (unsigned long long)i.child_failed, "child_cancelled", (unsigned long long)i.child_cancelled,
      "skipped_for_pause", (unsigned long long)i.skipped_for_pause, "last",
      i.last_isolation.c_str(), "last_child_error", i.last_child_error.c_str(),
      "last_fork_pause_ms", i.last_fork_pause_ms, "last_clone_ms", i.last_clone_ms,
      "last_child_walk_ms", i.last_child_walk_ms, "last_child_wall_ms", i.last_child_wall_ms,
      "last_child_peak_bytes", (unsigned long long)i.last_child_peak_bytes,
      "last_parent_fault_bytes", (unsigned long long)i.last_parent_fault_bytes,
      "last_page_table_bytes", (unsigned long long)i.last_page_table_bytes);
}

PyObject* MemoryStatus(const ReporterFigures& f) {
  const MemoryReading m = f.memory.value_or(MemoryReading{});
  return Py_BuildValue(
      "{s:s,s:K,s:K,s:s,s:K,s:K,s:K,s:K,s:I}", "watch", f.memory_watch.c_str(), "current",
      (unsigned long long)m.current, "limit", (unsigned long long)m.limit, "source", m.source,
      "limit_hits", (unsigned long long)m.limit_hits, "oom_kills", (unsigned long long)m.oom_kills,
      "graphs", (unsigned long long)f.memory_graphs, "summaries",
      (unsigned long long)f.memory_summaries, "last_crossed", (unsigned int)f.memory_crossed_pct);
}

PyObject* Status(PyObject*, PyObject*) {
  const AgentStatus status = GetAgentStatus();
  const ReporterFigures& f = status.figures;
  return Py_BuildValue(
      "{s:O,s:s,s:K,s:K,s:K,s:K,s:K,s:d,s:d,s:d,s:d,s:d,s:d,s:s,s:K,s:K,s:K,s:N,s:N,s:s,s:K,s:K}",
      "running", status.running ? Py_True : Py_False, "state", status.state, "taken",
      (unsigned long long)f.taken, "sent", (unsigned long long)f.sent, "delivered",
      (unsigned long long)f.delivered, "dropped", (unsigned long long)f.dropped,
      "last_encoded_bytes", (unsigned long long)f.last_encoded_bytes, "last_pause_ms",
      f.last_pause_ms, "total_pause_ms", f.total_pause_ms, "last_thread_cpu_ms",
      f.last_thread_cpu_ms, "last_child_cpu_ms", f.last_child_cpu_ms, "total_cpu_ms",
      f.total_cpu_ms, "last_encode_ms", f.last_encode_ms, "last_error", f.last_error.c_str(),
      "graph_requests", (unsigned long long)f.graph_requests, "graph_requests_delayed",
      (unsigned long long)f.graph_requests_delayed, "intervals_stretched",
      (unsigned long long)f.stretched, "isolation", IsolationStatus(), "memory", MemoryStatus(f),
      "endpoint", f.endpoint.c_str(), "failovers", (unsigned long long)f.failovers, "resent",
      (unsigned long long)f.resent);
}

PyObject* BeforeForkHook(PyObject*, PyObject*) {
  BeforeFork();
  Py_RETURN_NONE;
}

PyObject* AfterForkParentHook(PyObject*, PyObject*) {
  AfterForkInParent();
  Py_RETURN_NONE;
}

PyObject* AfterForkChildHook(PyObject*, PyObject*) {
  AfterForkInChild();
  Py_RETURN_NONE;
}

PyObject* StartSamplingCall(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"mean_bytes", "max_samples", "max_stacks", nullptr};
  SamplerSettings settings;
  unsigned long long mean = settings.mean_bytes, samples = settings.max_samples,
                     stacks = settings.max_stacks;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|KKK", const_cast<char**>(keywords), &mean,
                                   &samples, &stacks)) {
    return nullptr;
  }
  if (RefuseUnsupportedInterpreter()) return nullptr;
  settings.mean_bytes = mean;
  settings.max_samples = static_cast<size_t>(samples);
  settings.max_stacks = static_cast<size_t>(stacks);
  if (!StartSampling(settings)) return nullptr;
  Py_RETURN_NONE;
}

PyObject* StopSamplingCall(PyObject*, PyObject*) {
  StopSampling();
  Py_RETURN_NONE;
}

PyObject* SamplingStatus(PyObject*, PyObject*) {
  const SamplerFigures f = GetSamplerFigures();
  return Py_BuildValue(
      "{s:O,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "on", f.on ? Py_True : Py_False, "mean_bytes",
      (unsigned long long)f.mean_bytes, "samples_taken", (unsigned long long)f.samples_taken,
      "live_samples", (unsigned long long)f.live_samples, "dropped_samples",
      (unsigned long long)f.dropped_samples, "stacks", (unsigned long long)f.stacks,
      "dropped_stacks", (unsigned long long)f.dropped_stacks, "restarts",
      (unsigned long long)f.restarts, "table_bytes", (unsigned long long)f.table_bytes);
}

PyObject* Text(const std::string& s) {
  return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
}

// A snapshot's allocation sites for tidemark.load: None when it has none, else
// {mean_bytes, live_samples, ..., stacks: [[(file, function, line), ...]],
//  rows: [(type name or None, stack, bytes, count)], objects: {object: stack}}.
PyObject* SitesToPython(const snapshot::Snapshot& s) {
  const snapshot::Sites& sites = s.sites;
  if (!sites.recorded) Py_RETURN_NONE;
  PyObject* stacks = PyList_New(0);
  for (const auto& stack : sites.stacks) {
    PyObject* frames = PyList_New(0);
    for (uint32_t f : stack) {
      const snapshot::Sites::Frame& frame = sites.frames[f];
      PyObject* item = Py_BuildValue("(NNI)", Text(sites.strings[frame.file]),
                                     Text(sites.strings[frame.function]), frame.line);
      PyList_Append(frames, item);
      Py_XDECREF(item);
    }
    PyList_Append(stacks, frames);
    Py_DECREF(frames);
  }
  PyObject* rows = PyList_New(0);
  for (const snapshot::Sites::Row& row : sites.rows) {
    PyObject* type = row.type == snapshot::Sites::kNoObject ? (Py_INCREF(Py_None), Py_None)
                                                            : Text(s.types[row.type].name);
    PyObject* item = Py_BuildValue("(NIKK)", type, row.stack, (unsigned long long)row.bytes,
                                   (unsigned long long)row.count);
    PyList_Append(rows, item);
    Py_XDECREF(item);
  }
  PyObject* objects = PyDict_New();
  for (const auto& [object, stack] : s.graph.object_sites) {
    PyObject* k = PyLong_FromUnsignedLong(object);
    PyObject* v = PyLong_FromUnsignedLong(stack);
    PyDict_SetItem(objects, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
  }
  return Py_BuildValue(
      "{s:K,s:K,s:K,s:K,s:K,s:N,s:N,s:N}", "mean_bytes", (unsigned long long)sites.mean_bytes,
      "live_samples", (unsigned long long)sites.live_samples, "dropped_samples",
      (unsigned long long)sites.dropped_samples, "dropped_stacks",
      (unsigned long long)sites.dropped_stacks, "restarts", (unsigned long long)sites.restarts,
      "stacks", stacks, "rows", rows, "objects", objects);
}

// decode(encoded) -> dict: a snapshot's header, type table and graph columns as Python
// objects, for tests and tools (tidemark.load). Never called during a walk.
PyObject* Decode(PyObject*, PyObject* arg) {
  char* data;
  Py_ssize_t size;
  if (PyBytes_AsStringAndSize(arg, &data, &size) != 0) return nullptr;
  auto decoded = snapshot::Decode(std::string_view(data, static_cast<size_t>(size)));
  if (!decoded) {
    PyErr_SetString(PyExc_ValueError, decoded.error().message.c_str());
    return nullptr;
  }
  const snapshot::Snapshot& s = *decoded;
  const snapshot::Header& h = s.header;
  const snapshot::Graph& g = s.graph;
  const size_t n = g.object_count();
  PyObject* address = PyList_New(n);
  PyObject* type = PyList_New(n);
  PyObject* sizes = PyList_New(n);
  PyObject* length = PyList_New(n);
  PyObject* refs = PyList_New(n);
  for (size_t i = 0; i < n; ++i) {
    PyList_SET_ITEM(address, i, PyLong_FromUnsignedLongLong(g.address[i]));
    PyList_SET_ITEM(type, i, PyLong_FromUnsignedLong(g.type[i]));
    PyList_SET_ITEM(sizes, i, PyLong_FromUnsignedLongLong(g.size[i]));
    PyList_SET_ITEM(length, i, PyLong_FromUnsignedLongLong(g.length[i]));
    PyObject* r = PyList_New(static_cast<Py_ssize_t>(g.ref_begin[i + 1] - g.ref_begin[i]));
    for (uint64_t k = g.ref_begin[i]; k < g.ref_begin[i + 1]; ++k) {
      PyList_SET_ITEM(r, k - g.ref_begin[i], PyLong_FromUnsignedLong(g.refs[k]));
    }
    PyList_SET_ITEM(refs, i, r);
  }
  PyObject* roots = PyDict_New();
  for (const auto& [index, kind] : g.roots) {
    PyObject* k = PyLong_FromUnsignedLong(index);
    PyObject* v = PyLong_FromLong(static_cast<long>(kind));
    PyDict_SetItem(roots, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
  }
  auto sparse = [](const std::vector<std::pair<uint32_t, std::string>>& items) {
    PyObject* d = PyDict_New();
    for (const auto& [index, text] : items) {
      PyObject* k = PyLong_FromUnsignedLong(index);
      PyObject* v =
          PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
      PyDict_SetItem(d, k, v);
      Py_DECREF(k);
      Py_DECREF(v);
    }
    return d;
  };
  PyObject* true_refs = PyDict_New();
  for (const auto& [index, count] : g.true_ref_counts) {
    PyObject* k = PyLong_FromUnsignedLong(index);
    PyObject* v = PyLong_FromUnsignedLongLong(count);
    PyDict_SetItem(true_refs, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
  }
  // Format 2's namespaces: {dict: owner}, [(owner, target, name)], {key: name}.
  PyObject* owners = PyDict_New();
  for (const auto& [dict, owner] : g.owners) {
    PyObject* k = PyLong_FromUnsignedLong(dict);
    PyObject* v = PyLong_FromUnsignedLong(owner);
    PyDict_SetItem(owners, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
  }
  PyObject* attributes = PyList_New(0);
  for (const auto& a : g.attributes) {
    const std::string& name = g.attribute_names[a.name];
    PyObject* item = Py_BuildValue("(kks#)", static_cast<unsigned long>(a.owner),
                                   static_cast<unsigned long>(a.target), name.data(),
                                   static_cast<Py_ssize_t>(name.size()));
    if (item == nullptr) {
      PyErr_Clear();
      continue;
    }
    PyList_Append(attributes, item);
    Py_DECREF(item);
  }
  std::vector<std::pair<uint32_t, std::string>> keys;
  for (const auto& [key, name] : g.attribute_keys) keys.emplace_back(key, g.attribute_names[name]);
  PyObject* labels = PyDict_New();
  for (const auto& [k, v] : h.identity.labels) {
    PyObject* value = PyUnicode_FromString(v.c_str());
    PyDict_SetItemString(labels, k.c_str(), value);
    Py_DECREF(value);
  }
  PyObject* gc = PyList_New(0);
  for (int64_t c : h.gc_counts) {
    PyObject* v = PyLong_FromLongLong(c);
    PyList_Append(gc, v);
    Py_DECREF(v);
  }
  return Py_BuildValue(
      "{s:s,s:s,s:s,s:L,s:L,s:K,s:L,s:K,s:K,s:K,s:N,s:N,s:s,s:d,s:K,s:K,s:O,s:N,s:N,s:N,s:N,"
      "s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}",
      "kind", snapshot::KindName(h.kind), "service", h.identity.service.c_str(), "host",
      h.identity.host.c_str(), "pid", (long long)h.identity.pid, "start_ns",
      (long long)h.identity.start_time_ns, "seq", (unsigned long long)h.seq, "timestamp_ns",
      (long long)h.timestamp_ns, "objects", (unsigned long long)h.objects, "bytes",
      (unsigned long long)h.bytes, "rss", (unsigned long long)h.rss_bytes, "labels", labels,
      "gc_counts", gc, "python", h.python_version.c_str(), "pause_ms", h.agent.pause_ms, "dropped",
      (unsigned long long)h.agent.dropped, "delivered", (unsigned long long)h.agent.delivered,
      "abandoned", h.agent.abandoned ? Py_True : Py_False, "types", TypesToList(s.types), "address",
      address, "type", type, "size", sizes, "length", length, "refs", refs, "roots", roots, "names",
      sparse(g.names), "values", sparse(g.values), "true_ref_counts", true_refs, "owners", owners,
      "attributes", attributes, "attribute_keys", sparse(keys), "sites", SitesToPython(s));
}

PyMethodDef kMethods[] = {
    {"decode", Decode, METH_O, "Decode an encoded snapshot into a dict (header, types, graph)."},
    {"take", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(Take)),
     METH_VARARGS | METH_KEYWORDS,
     "Take one snapshot now; returns a dict (its \"result\": a Result)."},
    {"start", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(Start)),
     METH_VARARGS | METH_KEYWORDS, "Start the background reporter."},
    {"stop", Stop, METH_NOARGS, "Stop the background reporter and join its thread."},
    {"trigger", Trigger, METH_NOARGS, "Ask the reporter for a snapshot now."},
    {"status", Status, METH_NOARGS, "The reporter's figures."},
    {"start_sampling",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(StartSamplingCall)),
     METH_VARARGS | METH_KEYWORDS, "Start sampling allocations (or change the mean)."},
    {"stop_sampling", StopSamplingCall, METH_NOARGS, "Stop sampling allocations."},
    {"sampling_status", SamplingStatus, METH_NOARGS, "The allocation sampler's figures."},
    {"before_fork", BeforeForkHook, METH_NOARGS, nullptr},
    {"after_fork_parent", AfterForkParentHook, METH_NOARGS, nullptr},
    {"after_fork_child", AfterForkChildHook, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT,
                       "_native",
                       "tidemark's native agent.",
                       -1,
                       kMethods,
                       nullptr,
                       nullptr,
                       nullptr,
                       nullptr};

}  // namespace
}  // namespace tidemark::agent

// Single-phase init on purpose: CPython then refuses to load it in isolated sub-interpreters.
extern "C" __attribute__((visibility("default"))) PyObject* PyInit__native(void) {
  using namespace tidemark::agent;
  if (!tm_is_main_interpreter()) {
    PyErr_SetString(PyExc_ImportError, "tidemark cannot be imported in a sub-interpreter");
    return nullptr;
  }
  PrepareWalks();
  GuardForeignForks();
  InstanceStartNs();
  return PyModule_Create(&kModule);
}
