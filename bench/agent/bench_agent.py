"""bench/agent: what a snapshot costs its host, on the benchmark heap of shared/reference/meliae.md.

    PYTHONPATH=build/python/py311 python3.11 bench/agent/bench_agent.py [--items 160000 320000]
        [--markdown]

For each heap (plain, then churned: the same objects allocated in shuffled order, a third
freed and reallocated) it reports, in one process: objects and references; the GIL-held
pause of summary and graph snapshots (ms, ns/object); encode+compress time off the GIL;
bytes/object on the wire; the agent's peak extra memory per object (VmHWM after resetting
it via /proc/self/clear_refs, minus RSS before); coverage (snapshot bytes / tracemalloc's
traced bytes, in a child started with -X tracemalloc); and a pure-Python walker over the
same heap, as a ratio. Figures are medians of --repeat runs.
"""

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time

import tidemark


class Item(object):
    pass


def build_heap(items, churn, seed=1):
    """Groups of 10 Items, each kept in a dict by name and in a list (meliae.md)."""
    order = list(range(items))
    if churn:
        random.Random(seed).shuffle(order)
    made = {}
    for i in order:
        it = Item()
        it.id = i + 1000
        it.name = "item-%d" % i
        it.tags = (i + 1000, "x")
        it.__dict__  # Materialize the instance dict, as the reference heap does.
        made[i] = it
    if churn:
        rng = random.Random(seed + 1)
        victims = rng.sample(range(items), items // 3)
        for i in victims:
            del made[i]
        gc.collect()
        for i in victims:
            it = Item()
            it.id = i + 1000
            it.name = "item-%d" % i
            it.tags = (i + 1000, "x")
            it.__dict__
            made[i] = it
    groups = []
    for g in range(0, items, 10):
        members = [made[i] for i in range(g, min(g + 10, items))]
        groups.append(({m.name: m for m in members}, members))
    return groups



def heaps_in_fresh_interpreters(script, one, default_items):
    """The driver of a bench measuring each benchmark heap, plain and churned, in a fresh
    interpreter: parses --items, --repeat, --markdown; run as `script --one ITEMS CHURN`, prints
    one(items, churn, repeat) as JSON and returns None; else runs that for every heap and
    returns (args, results), each result marked with "churn"."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=default_items)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print the results table")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], bool(args.one[1]), args.repeat)))
        return None
    results = []
    for items in args.items:
        for churn in (False, True):
            sys.stderr.write("measuring %d items%s...\n" % (items, " churned" if churn else ""))
            out = subprocess.run([sys.executable, script, "--repeat", str(args.repeat),
                                  "--one", str(items), str(int(churn))],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            r["churn"] = churn
            results.append(r)
    return args, results

def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def trim_malloc():
    """Hands memory freed by earlier snapshots back to the kernel, so that RSS before a
    snapshot does not include free space the snapshot would then reuse unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def python_walk():
    """The pure-Python reachable walk meliae.md measures: seen-set of ids, getsizeof, type
    name, referent ids."""
    seen = set()
    stack = list(gc.get_objects()) + list(sys.modules.values())
    records = 0
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen:
            continue
        seen.add(i)
        size = sys.getsizeof(o)
        name = type(o).__name__
        refs = [id(r) for r in gc.get_referents(o)]
        stack.extend(r for r in gc.get_referents(o))
        records += 1 + (size > -1) + len(name) * 0 + len(refs) * 0
    return len(seen)


def measure(items, churn, repeat):
    gc.collect()
    heap = build_heap(items, churn)  # noqa: F841 - kept alive for the snapshots.
    gc.collect()
    gc.disable()
    try:
        rows = {}
        for kind in ("summary", "graph"):
            pauses, encodes, sizes, peaks = [], [], [], []
            snap = None
            for _ in range(repeat):
                snap = None
                gc.collect()
                trim_malloc()
                base = rss_bytes()
                peak_ok = reset_peak()
                snap = tidemark.snapshot(kind=kind)
                peaks.append(peak_rss_bytes() - base if peak_ok else float("nan"))
                pauses.append(snap.pause_ms)
                encodes.append(snap.encode_ms)
                sizes.append(len(snap.encoded))
            objects = snap.objects
            rows[kind] = {
                "objects": objects, "references": snap.references,
                "pause_ms": statistics.median(pauses),
                "pause_ns_per_object": statistics.median(pauses) * 1e6 / objects,
                "encode_ms": statistics.median(encodes),
                "wire_bytes_per_object": statistics.median(sizes) / objects,
                "peak_extra_bytes_per_object": statistics.median(peaks) / objects,
                "peak_extra_bytes": statistics.median(peaks),
            }
        t0 = time.perf_counter()
        walked = python_walk()
        python_ns = (time.perf_counter() - t0) * 1e9 / max(walked, 1)
        rows["python_walk_ns_per_object"] = python_ns
        rows["python_walk_objects"] = walked
        return rows
    finally:
        gc.enable()


def coverage(items, churn):
    """Run in a child under -X tracemalloc: snapshot bytes / traced bytes."""
    code = ("import sys, gc, tracemalloc; sys.path.insert(0, %r); import bench_agent as b; "
            "h = b.build_heap(%d, %r); gc.collect(); "
            "import tidemark; s = tidemark.snapshot(); traced = tracemalloc.get_traced_memory()[0]; "
            "print(s.bytes / traced)") % (os.path.dirname(os.path.abspath(__file__)), items, churn)
    out = subprocess.run([sys.executable, "-X", "tracemalloc", "-c", code], capture_output=True,
                         text=True, check=True, env=os.environ)
    return float(out.stdout.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[160000, 320000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print the results table")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for items in args.items:
        for churn in (False, True):
            sys.stderr.write("measuring %d items%s...\n" % (items, " churned" if churn else ""))
            r = measure(items, churn, args.repeat)
            r["coverage"] = coverage(items, churn)
            r["heap"] = "%d items%s" % (items, ", churned" if churn else "")
            results.append(r)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("Python %s" % sys.version.split()[0])
    print()
    print("| heap | objects | refs | summary pause ms (ns/obj) | graph pause ms (ns/obj) | "
          "graph encode ms, off GIL | wire: summary KB, graph B/obj | graph peak extra B/obj "
          "(target 40 + 8/ref) | coverage | pure-Python walk ns/obj (x ours, graph) |")
    print("|" + "---|" * 10)
    for r in results:
        s, g = r["summary"], r["graph"]
        budget = 40 + 8.0 * g["references"] / g["objects"]
        print("| %s | %d | %d | %.0f (%.0f) | %.0f (%.0f) | %.0f | %.1f KB, %.2f | %.0f (%.0f) "
              "| %.1f%% | %.0f (%.0fx) |" % (
                  r["heap"], g["objects"], g["references"], s["pause_ms"], s["pause_ns_per_object"],
                  g["pause_ms"], g["pause_ns_per_object"], g["encode_ms"],
                  s["wire_bytes_per_object"] * s["objects"] / 1024.0, g["wire_bytes_per_object"],
                  g["peak_extra_bytes_per_object"], budget, r["coverage"] * 100,
                  r["python_walk_ns_per_object"],
                  r["python_walk_ns_per_object"] / g["pause_ns_per_object"]))


if __name__ == "__main__":
    main()
