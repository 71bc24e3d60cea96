"""tidemark: continuous heap snapshots of this Python process.

    import tidemark
    snap = tidemark.snapshot()              # a summary snapshot now
    snap.top(5)                             # the five types holding the most bytes
    tidemark.dump("heap.tdmk", kind="graph")  # for `tidemark summary heap.tdmk`
    tidemark.start("tcp://127.0.0.1:7878", service="checkout", interval=60)

Snapshots are taken natively: the walk runs no Python code and leaves the heap as it was.
Nothing is printed unless asked: the agent's own troubles go to the stdlib logging logger
"tidemark", which has a NullHandler (TIDEMARK_DEBUG=1 also prints them to stderr).
"""

import atexit
import os
import sys

__all__ = ["Snapshot", "TypeRow", "snapshot", "dump", "load", "start", "stop", "status", "trigger",
           "start_from_env", "start_sampling", "stop_sampling"]
__version__ = "0.1.0"

if "t" in getattr(sys, "abiflags", ""):  # Free-threaded (3.13t): Py_GIL_DISABLED builds.
    raise ImportError("tidemark does not support free-threaded CPython builds "
                      "(python3.13t): its walk relies on the GIL to see a consistent heap")



def _built_for():
    """The interpreters the native module next to this file was built for ("cpython-311"...)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        names = os.listdir(here)
    except OSError:
        return []
    return sorted("-".join(n.split(".")[1].split("-")[:2])
                  for n in names if n.startswith("_native.") and n.count(".") >= 2)


try:
    from . import _native  # noqa: E402
except ImportError as e:
    _this = "cpython-%d%d" % sys.version_info[:2]
    _built = _built_for()
    if _built and _this not in _built:
        raise ImportError("tidemark: this package was built for %s, not for this interpreter "
                          "(%s, %s): install the build for %s" % (
                              ", ".join(_built), _this, sys.executable,
                              "CPython %d.%d" % sys.version_info[:2])) from None
    raise ImportError("tidemark: its native module does not load: %s" % e) from e

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7878"
DEFAULT_SAMPLE_BYTES = 512 * 1024
WATCH_MODES = ("all", "children", "parent")


def _logger():
    """The "tidemark" logger, with a NullHandler: quiet unless the program configures logging.
    Imported on first use: logging costs a child ~40 ms to import."""
    import logging

    log = logging.getLogger("tidemark")
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
    return log


class TypeRow(tuple):
    """One row of the per-type table: (name, count, bytes, max_bytes)."""

    __slots__ = ()
    name = property(lambda self: self[0])
    count = property(lambda self: self[1])
    bytes = property(lambda self: self[2])
    max_bytes = property(lambda self: self[3])


class Snapshot(object):
    """One heap snapshot: totals, the per-type table (largest first) and the encoded bytes.

    Its rows and bytes are held natively and built on each read of `types` and `encoded`: a
    Snapshot the program keeps is not its memory in later snapshots (it counts as two small
    objects, not the rows and the encoded message)."""

    __slots__ = ("kind", "objects", "bytes", "pause_ms", "encode_ms", "references", "abandoned",
                 "abandon_reason", "isolation", "sizers_skipped", "_result")

    def __init__(self, kind, result):
        self.kind = kind
        self.objects = result["objects"]
        self.bytes = result["bytes"]
        self.pause_ms = result["pause_ms"]
        self.encode_ms = result["encode_ms"]
        self.references = result["references"]
        self.abandoned = result["abandoned"]
        self.abandon_reason = result["reason"]
        # Where the walk ran: "inline", "fork", or "inline (fork refused: ...)".
        self.isolation = result["isolation"]
        self.sizers_skipped = result["sizers_skipped"]  # Sizers a snapshot child cannot run.
        self._result = result["result"]

    @property
    def types(self):
        """The type rows, largest first: a new list of TypeRow on each read."""
        return sorted((TypeRow(r) for r in self._result.types()),
                      key=lambda r: (-r[2], -r[1], r[0]))

    @property
    def encoded(self):
        """The encoded snapshot (what dump() writes): new bytes on each read."""
        return self._result.encoded()

    def top(self, n=20):
        return self.types[:n]

    def type(self, name):
        """The row for a type name (module-qualified), or None."""
        for row in self.types:
            if row.name == name:
                return row
        return None

    def __repr__(self):
        return "<tidemark.Snapshot %s: %d objects, %d bytes, %d types>" % (
            self.kind, self.objects, self.bytes, len(self.types))


_seq = [0]


def _is_name(name):
    """What the collector takes as a service name: 1-255 bytes of UTF-8 without '/' or '@'
    (the separators of "service/host/pid@start") or control characters."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 0 < size <= 255 and not any(c in "/@" or ord(c) < 32 or ord(c) == 127 for c in name)


def _service(service=None):
    """The service name: given, TIDEMARK_SERVICE (both refused when the collector would refuse
    them), or the program's name (made into one)."""
    given = service or os.environ.get("TIDEMARK_SERVICE")
    if given:
        if not _is_name(given):
            raise ValueError("service %r: expected 1 to 255 bytes without '/', '@' or control "
                             "characters (service= or TIDEMARK_SERVICE)" % (given,))
        return given
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return _name_from(os.path.splitext(name)[0])


def _name_from(text):
    """A service name made from a program's name: '/', '@' and control characters become
    '_'; "python" if nothing usable is left."""
    name = "".join("_" if c in "/@" or ord(c) < 32 or ord(c) == 127 else c for c in text)
    return name if _is_name(name) else "python"


def _labels(labels):
    if labels is None:
        return parse_labels(os.environ.get("TIDEMARK_LABELS", ""))
    if isinstance(labels, str):
        return parse_labels(labels)
    return {str(k): str(v) for k, v in labels.items()}


def parse_labels(text):
    """Parses "env=prod,version=1.4" into a dict; raises ValueError naming a bad item."""
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("bad label %r: expected key=value (as in env=prod,version=1.4)" % item)
        labels[key.strip()] = value.strip()
    return labels


def snapshot(kind="summary", values=False, max_refs=None, exclude=(), max_objects=0,
             max_pause_ms=0, service=None, labels=None, sizers=None, isolation=None,
             child_memory=None, child_timeout=None, max_inline_pause=None):
    """Takes a snapshot of this process's heap now and returns a Snapshot.

    kind: "summary" (per-type counts and bytes) or "graph" (every object and reference).
    values: graph only; include the first 100 characters of str and small numbers.
    max_refs: graph only; keep at most this many references per object (true count kept).
    exclude: type names (module-qualified) neither recorded nor entered.
    max_objects, max_pause_ms: abandon the walk past these limits (Snapshot.abandoned).
    sizers: {type name: callable(obj) -> int}: bytes an object owns beyond its own size
        (e.g. {"numpy.ndarray": lambda a: a.nbytes if a.base is None else 0}); run after
        the walk, with the GIL, never during it.
    isolation: where the walk runs: "inline" (this thread, the GIL held throughout), "fork"
        (a copy-on-write child walks a frozen copy; the GIL is held only to make it) or
        "auto" (fork when that is the shorter pause); default TIDEMARK_ISOLATION, else auto.
        A refused fork or a failed child is walked inline instead: Snapshot.isolation says
        which ran and why. Sizers cannot run in a child (auto walks inline when they are set).
    child_memory, child_timeout: the child's memory cap (bytes, or "1GiB") and deadline
        (seconds); default TIDEMARK_CHILD_MEMORY (1GiB) and TIDEMARK_CHILD_TIMEOUT (60).
    """
    _seq[0] += 1
    result = _native.take(kind=kind, values=bool(values),
                          max_refs=-1 if max_refs is None else int(max_refs),
                          exclude=list(exclude), max_objects=int(max_objects),
                          max_pause_ms=float(max_pause_ms),
                          service=_service(service), labels=_labels(labels),
                          seq=_seq[0], sizers=sizers,
                          **_isolation(isolation, child_memory, child_timeout, max_inline_pause))
    return Snapshot(kind, result)


ISOLATION_MODES = ("auto", "fork", "inline")


def _isolation(isolation=None, child_memory=None, child_timeout=None, max_inline_pause=None):
    """Isolation settings from the arguments, else TIDEMARK_ISOLATION, TIDEMARK_CHILD_MEMORY,
    TIDEMARK_CHILD_TIMEOUT and TIDEMARK_MAX_INLINE_PAUSE, checked; ValueError naming what is
    wrong."""
    if isolation is None:
        isolation = _env("TIDEMARK_ISOLATION") or "auto"
        name = "TIDEMARK_ISOLATION"
    else:
        name = "isolation"
    if isolation not in ISOLATION_MODES:
        raise ValueError("%s must be one of %s, not %r" % (name, ", ".join(ISOLATION_MODES),
                                                           isolation))
    name = "child_memory"
    if child_memory is None:
        child_memory = _env("TIDEMARK_CHILD_MEMORY") or "auto"
        name = "TIDEMARK_CHILD_MEMORY"
    # "auto" (0): enough for the heap, 160 bytes per object, at least 1GiB (agent/take.h).
    child_memory = 0 if child_memory == "auto" else _bytes(child_memory, name)
    if child_memory != 0 and child_memory < (1 << 20):
        raise ValueError("child_memory (TIDEMARK_CHILD_MEMORY) must be 'auto' or at least 1MiB, "
                         "not %r" % (child_memory,))
    if child_timeout is None:
        child_timeout = _env_float("TIDEMARK_CHILD_TIMEOUT", 60.0)
    if not float(child_timeout) > 0:
        raise ValueError("child_timeout (TIDEMARK_CHILD_TIMEOUT) must be a positive number of "
                         "seconds, not %r" % (child_timeout,))
    if max_inline_pause is None:
        max_inline_pause = _env_float("TIDEMARK_MAX_INLINE_PAUSE", 0.2)
    if not float(max_inline_pause) > 0:
        raise ValueError("max_inline_pause (TIDEMARK_MAX_INLINE_PAUSE) must be a positive "
                         "number of seconds, not %r" % (max_inline_pause,))
    return {"isolation": isolation, "child_memory": int(child_memory),
            "child_timeout": float(child_timeout), "max_inline_pause": float(max_inline_pause)}


def dump(path, kind="summary", **options):
    """Takes a snapshot and writes it to `path` (atomically); returns the Snapshot."""
    snap = snapshot(kind=kind, **options)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(snap.encoded)
    os.replace(tmp, path)
    return snap


_hooks_installed = [False]


def _install_hooks():
    if _hooks_installed[0]:
        return
    _hooks_installed[0] = True
    atexit.register(stop)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_native.before_fork,
                            after_in_parent=_native.after_fork_parent,
                            after_in_child=_native.after_fork_child)


def _signal_number(sig):
    if sig is None or sig == "" or sig == 0:
        return 0
    if isinstance(sig, int):
        return sig
    import signal as signals

    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = getattr(signals, name, None)
    if not isinstance(number, int):
        raise ValueError("unknown signal %r" % sig)
    return int(number)


def _env(name):
    return os.environ.get(name, "").strip()


def _env_float(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError("%s=%r is not a number of seconds" % (name, raw))


def _env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError("%s=%r is not a whole number" % (name, raw))


def start(endpoint=None, service=None, interval=None, graph_every=None, labels=None,
          values=False, max_refs=None, exclude=(), signal=None, max_objects=0, max_pause_ms=0,
          budget_bytes=64 << 20, curve_server_key=None, curve_public_key=None,
          curve_secret_key=None, sizers=None, graph_request_interval=None, watch=None,
          max_overhead=None, warn_after=None, sample_bytes=None, isolation=None,
          child_memory=None, child_timeout=None, memory_limit=None, memory_thresholds=None,
          memory_check=None, max_inline_pause=None, _probation=0.0):
    """Starts periodic snapshots from a native thread, pushed to a collector over ZeroMQ.

    Unset arguments come from the environment: TIDEMARK_ENDPOINT (default
    tcp://127.0.0.1:7878; several, comma-separated, are collectors to fail over between: the
    agent's home is chosen by rendezvous hashing of its instance, it moves to the next when
    nothing is acknowledged for TIDEMARK_FAILOVER seconds (default 30), sending again what was
    not acknowledged, and tries its home again after TIDEMARK_HOME_RETRY seconds (default 120)
    elsewhere; status()["endpoint"] is the one in use), TIDEMARK_SERVICE, TIDEMARK_INTERVAL (seconds, default 60),
    TIDEMARK_GRAPH_EVERY, TIDEMARK_VALUES ("1": graphs carry short values, so analysis can name
    dict keys and attributes), TIDEMARK_LABELS ("env=prod,version=1.4"), TIDEMARK_SIGNAL (e.g.
    "USR1": that signal takes a snapshot now; off by default), TIDEMARK_CURVE_SERVER_KEY,
    TIDEMARK_CURVE_PUBLIC_KEY and TIDEMARK_CURVE_SECRET_KEY (Z85 keys from `tidemark keygen`;
    all three turn CURVE encryption on), TIDEMARK_GRAPH_REQUEST_INTERVAL (seconds, default 5:
    a graph snapshot a collector asks for sooner than this after the last one waits),
    TIDEMARK_WATCH ("all", the default: every process reports; "children": a process that
    forks stops reporting at its first fork, for prefork masters that serve nothing;
    "parent": children, forked or spawned, do not report), TIDEMARK_MAX_OVERHEAD (the largest
    share of wall time periodic snapshots may cost in CPU — the agent's thread and a snapshot
    child alike — as "1%" (the default) or 0.01: after a snapshot that cost c seconds of CPU,
    the next waits at least c / share; "0" turns the bound off),
    TIDEMARK_WARN_AFTER (seconds, default 300: no snapshot acknowledged that long is one warning
    to the "tidemark" logger, and delivery resuming another), TIDEMARK_SAMPLE_BYTES (allocation
    sites, off by default: the mean number of bytes allocated between two sampled allocations,
    as 524288, "512KiB" (the recommended mean) or "1MiB"; "0" is off: see start_sampling()),
    TIDEMARK_ISOLATION ("auto", the default: large heaps are walked in a copy-on-write child
    so the GIL is held only to make it; "fork"; "inline"), TIDEMARK_CHILD_MEMORY (the child's
    memory cap, default "1GiB") and TIDEMARK_CHILD_TIMEOUT (its deadline, default 60 seconds):
    see snapshot() and docs/agent.md. The memory limit: the process's cgroup limit is watched
    every TIDEMARK_MEMORY_CHECK seconds (default 1; 0 turns watching off), or the resident set
    size against TIDEMARK_MEMORY_LIMIT (bytes, "512MiB"; off by default); crossing one of
    TIDEMARK_MEMORY_THRESHOLDS (percent, default "80,90") sends a graph snapshot at once
    (TIDEMARK_CGROUP_DIR names the cgroup directory to read instead of this process's own).

    Raises ValueError naming the argument or variable that is wrong.
    """
    settings = _settings(endpoint=endpoint, interval=interval, graph_every=graph_every,
                         signal=signal, graph_request_interval=graph_request_interval,
                         watch=watch, labels=labels, max_overhead=max_overhead,
                         warn_after=warn_after, values=values or None, sample_bytes=sample_bytes)
    values, sample_bytes = settings["values"], settings["sample_bytes"]
    isolation_settings = _isolation(isolation, child_memory, child_timeout, max_inline_pause)
    memory_settings = _memory(memory_limit, memory_thresholds, memory_check)
    service = _service(service)
    _install_hooks()
    if sample_bytes:
        _native.start_sampling(mean_bytes=sample_bytes)
    _native.start(settings["endpoint"], service, labels=settings["labels"],
                  interval=settings["interval"], graph_every=settings["graph_every"],
                  values=bool(values),
                  max_refs=-1 if max_refs is None else int(max_refs), exclude=list(exclude),
                  max_objects=int(max_objects), max_pause_ms=float(max_pause_ms),
                  budget_bytes=int(budget_bytes), signal=settings["signal"],
                  curve_server_key=curve_server_key or _env("TIDEMARK_CURVE_SERVER_KEY"),
                  curve_public_key=curve_public_key or _env("TIDEMARK_CURVE_PUBLIC_KEY"),
                  curve_secret_key=curve_secret_key or _env("TIDEMARK_CURVE_SECRET_KEY"),
                  sizers=sizers, graph_request_interval=settings["graph_request_interval"],
                  watch=settings["watch"], probation=float(_probation),
                  max_overhead=settings["max_overhead"], warn_after=settings["warn_after"],
                  failover=settings["failover"], home_retry=settings["home_retry"],
                  **isolation_settings, **memory_settings)


def _bytes(value, name):
    """A byte count: 524288, "512KiB", "512k", "1MiB", "1m"; 0 or more."""
    text = str(value).strip().lower().replace(" ", "")
    units = (("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("k", 1 << 10),
             ("m", 1 << 20), ("g", 1 << 30), ("b", 1), ("", 1))
    for suffix, scale in units:
        if text.endswith(suffix) and text[:len(text) - len(suffix)].isdigit():
            return int(text[:len(text) - len(suffix)]) * scale
    raise ValueError("%s=%r is not a number of bytes (as in 524288, 512KiB or 1MiB)"
                     % (name, value))


def start_sampling(mean_bytes=DEFAULT_SAMPLE_BYTES, max_samples=1 << 16, max_stacks=1 << 14):
    """Starts recording where allocations are made, so that snapshots carry the allocation
    sites of the live heap (`tidemark sites`). start() does this when asked
    (sample_bytes=, TIDEMARK_SAMPLE_BYTES). It costs 2-3% more instructions in allocation-heavy
    code whatever the mean (the hooks themselves), more in wall time on some services:
    bench/agent/RESULTS.md.

    Allocations are sampled by bytes, one per `mean_bytes` allocated on average (exponential
    gaps, as Go's and tcmalloc's heap profilers do): an allocation of s bytes is sampled with
    probability 1 - exp(-s / mean_bytes) and stands for 1 / that probability allocations, so the
    estimates are unbiased. A sampled allocation keeps its Python stack (64 frames at most)
    until it is freed; at most `max_samples` live samples and `max_stacks` distinct stacks are
    kept (what does not fit is counted in status()["sampling"]). Works beside tracemalloc and
    other allocator hooks, started before or after."""
    mean_bytes = _bytes(mean_bytes, "mean_bytes")
    if mean_bytes <= 0:
        raise ValueError("mean_bytes must be at least 1 (stop_sampling() turns sampling off)")
    _native.start_sampling(mean_bytes=mean_bytes, max_samples=int(max_samples),
                           max_stacks=int(max_stacks))


def stop_sampling():
    """Stops recording allocation sites and forgets the samples."""
    _native.stop_sampling()


def _check_endpoint(endpoint, name):
    """One ZeroMQ endpoint, or several separated by commas (collectors to fail over between)."""
    parts = [p.strip() for p in endpoint.split(",") if p.strip()]
    if len(parts) > 1:
        for part in parts:
            _check_endpoint(part, name)
        return ",".join(parts)
    scheme, sep, rest = endpoint.strip().partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError("%s=%r is not a ZeroMQ endpoint: expected tcp://HOST:PORT "
                         "(as in %s)" % (name, endpoint, DEFAULT_ENDPOINT))
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("%s=%r: expected tcp://HOST:PORT with a port from 1 to 65535"
                             % (name, endpoint))
    return endpoint


def _overhead(value, name):
    """"1%", "0.5%" or a fraction such as 0.01, as a fraction below 1."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if not 0 <= share < 1:
        raise ValueError("%s=%r: expected a share of time such as \"1%%\" or 0.01 (0: no bound)"
                         % (name, value))
    return share


BOOLEANS = {"": False, "0": False, "false": False, "no": False, "off": False,
            "1": True, "true": True, "yes": True, "on": True}


def _settings(endpoint=None, interval=None, graph_every=None, signal=None,
              graph_request_interval=None, watch=None, labels=None, max_overhead=None,
              warn_after=None, values=None, sample_bytes=None):
    """The agent's settings from the arguments, else the environment, checked. Raises
    ValueError naming the argument or TIDEMARK_* variable that is wrong."""
    if values is None:
        raw = _env("TIDEMARK_VALUES").strip().lower()
        if raw not in BOOLEANS:
            raise ValueError("TIDEMARK_VALUES must be 1 or 0 (true/false, yes/no, on/off), not "
                             "%r" % (_env("TIDEMARK_VALUES"),))
        values = BOOLEANS[raw]
    if sample_bytes is None:
        # Off unless asked: the allocator hooks cost more than the 2% budget on
        # allocation-heavy code (bench/agent/RESULTS.md, "Allocation sampling").
        sample_bytes = _bytes(_env("TIDEMARK_SAMPLE_BYTES") or 0, "TIDEMARK_SAMPLE_BYTES")
    else:
        sample_bytes = _bytes(sample_bytes, "sample_bytes")
    name = "endpoint" if endpoint else "TIDEMARK_ENDPOINT"
    endpoint = _check_endpoint(endpoint or _env("TIDEMARK_ENDPOINT") or DEFAULT_ENDPOINT, name)
    if interval is None:
        interval = _env_float("TIDEMARK_INTERVAL", 60.0)
    if not float(interval) > 0:
        raise ValueError("interval (TIDEMARK_INTERVAL) must be a positive number of seconds, "
                         "not %r" % (interval,))
    if graph_every is None:
        graph_every = _env_int("TIDEMARK_GRAPH_EVERY", 0)
    if int(graph_every) < 0:
        raise ValueError("graph_every (TIDEMARK_GRAPH_EVERY) must be 0 or more, not %r"
                         % (graph_every,))
    if graph_request_interval is None:
        graph_request_interval = _env_float("TIDEMARK_GRAPH_REQUEST_INTERVAL", 5.0)
    if signal is None:
        signal = os.environ.get("TIDEMARK_SIGNAL")
    if watch is None:
        watch = _env("TIDEMARK_WATCH") or "all"
    if watch not in WATCH_MODES:
        raise ValueError("watch (TIDEMARK_WATCH) must be one of %s, not %r"
                         % (", ".join(WATCH_MODES), watch))
    if max_overhead is None:
        max_overhead = _overhead(_env("TIDEMARK_MAX_OVERHEAD") or "1%", "TIDEMARK_MAX_OVERHEAD")
    else:
        max_overhead = _overhead(max_overhead, "max_overhead")
    if warn_after is None:
        warn_after = _env_float("TIDEMARK_WARN_AFTER", 300.0)
    if not float(warn_after) > 0:
        raise ValueError("warn_after (TIDEMARK_WARN_AFTER) must be a positive number of seconds, "
                         "not %r" % (warn_after,))
    failover = _env_float("TIDEMARK_FAILOVER", 30.0)
    home_retry = _env_float("TIDEMARK_HOME_RETRY", 120.0)
    for variable, value in (("TIDEMARK_FAILOVER", failover), ("TIDEMARK_HOME_RETRY", home_retry)):
        if not value > 0:
            raise ValueError("%s must be a positive number of seconds, not %r" % (variable, value))
    return {"endpoint": endpoint, "interval": float(interval), "graph_every": int(graph_every),
            "failover": failover, "home_retry": home_retry,
            "max_overhead": max_overhead, "warn_after": float(warn_after),
            "graph_request_interval": float(graph_request_interval),
            "signal": _signal_number(signal), "watch": watch, "labels": _labels(labels),
            "values": bool(values), "sample_bytes": sample_bytes}


def _memory(memory_limit=None, memory_thresholds=None, memory_check=None):
    """Memory-limit settings from the arguments, else TIDEMARK_MEMORY_LIMIT,
    TIDEMARK_MEMORY_THRESHOLDS, TIDEMARK_MEMORY_CHECK and TIDEMARK_CGROUP_DIR, checked;
    ValueError naming what is wrong."""
    if memory_limit is None:
        memory_limit = _bytes(_env("TIDEMARK_MEMORY_LIMIT") or 0, "TIDEMARK_MEMORY_LIMIT")
    else:
        memory_limit = _bytes(memory_limit, "memory_limit")
    name = "memory_thresholds"
    if memory_thresholds is None:
        memory_thresholds, name = _env("TIDEMARK_MEMORY_THRESHOLDS") or "80,90", \
            "TIDEMARK_MEMORY_THRESHOLDS"
    if not isinstance(memory_thresholds, str):
        memory_thresholds = ",".join(str(t) for t in memory_thresholds)
    percents = []
    for item in memory_thresholds.split(","):
        item = item.strip().rstrip("%")
        if not item.isdigit() or not 1 <= int(item) <= 100:
            raise ValueError("%s=%r: expected percentages from 1 to 100, as in \"80,90\""
                             % (name, memory_thresholds))
        percents.append(int(item))
    if memory_check is None:
        memory_check = _env_float("TIDEMARK_MEMORY_CHECK", 1.0)
    if not float(memory_check) >= 0:
        raise ValueError("memory_check (TIDEMARK_MEMORY_CHECK) must be 0 (off) or a positive "
                         "number of seconds, not %r" % (memory_check,))
    return {"memory_limit": int(memory_limit),
            "memory_thresholds": ",".join(str(p) for p in percents),
            "memory_check": float(memory_check), "cgroup_dir": _env("TIDEMARK_CGROUP_DIR")}


def check_environment():
    """Checks every TIDEMARK_* setting without starting anything; raises ValueError naming
    the first that is wrong (python -m tidemark run calls it before running the program)."""
    _settings()
    _isolation()
    _memory()
    _service()


def start_from_env(child=False):
    """Starts the agent if TIDEMARK_ENDPOINT is set; returns whether it did.

    child: this is a child of a watched program (started by its sitecustomize): it opens
    nothing until it has lived a jittered interval, and does not start at all under
    TIDEMARK_WATCH=parent. Errors never escape (a monitoring agent must not break its host):
    they are logged to the "tidemark" logger, and printed to stderr if TIDEMARK_DEBUG is set.
    """
    if not os.environ.get("TIDEMARK_ENDPOINT"):
        return False
    try:
        if child and _settings()["watch"] == "parent":
            return False
        start(_probation=-1.0 if child else 0.0)  # -1: a jittered interval, chosen natively.
        return True
    except Exception as e:  # noqa: BLE001
        _report_trouble("not started: %s" % e)
        return False


def _report_trouble(message):
    _logger().warning("%s", message)
    if os.environ.get("TIDEMARK_DEBUG"):
        sys.stderr.write("tidemark: %s\n" % message)


def stop():
    """Stops the reporter thread (sending what it can within a bounded linger) and the
    allocation sampler."""
    _native.stop()
    _native.stop_sampling()


def status():
    """The agent's figures: running, taken, sent, delivered, dropped, last pause, ..., and
    "sampling": the allocation sampler's (on, mean_bytes, live_samples, dropped_samples, ...)."""
    figures = _native.status()
    figures["sampling"] = _native.sampling_status()
    return figures


def trigger():
    """Asks the running reporter for a snapshot now."""
    _native.trigger()


def load(source):
    """Decodes a snapshot (a path, or the encoded bytes) into a dict: header fields, "types"
    rows (name, count, bytes, max_bytes) and, for graphs, the columns "address", "type"
    (index into types), "size", "length", "refs" (lists of object indices), "roots",
    "names", "values". Raises ValueError naming what is malformed."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        with open(source, "rb") as f:
            data = f.read()
    return _native.decode(data)
