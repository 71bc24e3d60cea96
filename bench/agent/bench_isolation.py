"""bench/agent: what a snapshot costs its host walked inline and in a copy-on-write child
(isolation "fork"), on the benchmark heap of shared/reference/meliae.md, plain and churned.

    PYTHONPATH=build/python/py311 python3.11 bench/agent/bench_isolation.py \
        [--items 160000 320000 800000] [--repeat 3] [--markdown]

Each heap is built in a fresh interpreter (160,000 items are ~1M objects). In it, one run:
- the first inline summary after the heap grew (the walker sizes its buffers from the
  previous walk) and the median of --repeat more;
- the GIL pause of a fork-mode summary (median) and the clone system call's share of it, its
  ratio to the inline pause, and per GB of RSS; the page tables' size;
- wall time from the clone to the encoded snapshot in the parent's hands; the child's peak
  memory (its own tables and message);
- pages the parent faulted in while the child lived, idle and with a mutator thread
  allocating 1 KiB objects as fast as it can (copy-on-write copies, mostly);
- an app thread's progress during a snapshot: the longest it went without completing a unit
  of work (a unit is ~0.1 ms), and its throughput from the snapshot's start until it is in
  hand, as a share of its own rate just before, inline and fork.
"""

import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


class App(object):
    """A thread doing small units of work, recording when each ends."""

    def __init__(self):
        self.stop = False
        self.ends = []
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop:
            sum(range(300))
            self.ends.append(time.perf_counter())

    def rate(self, start, end):
        """Units of work completed per second between start and end."""
        return sum(1 for t in self.ends if start <= t <= end) / (end - start)

    def longest_gap_ms(self, start, end):
        inside = [t for t in self.ends if start <= t <= end]
        points = [start] + inside + [end]
        return max(b - a for a, b in zip(points, points[1:])) * 1000


class Mutator(object):
    def __init__(self):
        self.stop = False
        self.thread = threading.Thread(target=self.run)

    def run(self):
        keep = []
        while not self.stop:
            keep.append(bytearray(1024))
            if len(keep) > 50000:
                del keep[:25000]


def one(items, churn, repeat):
    import tidemark
    sys.path.insert(0, HERE)
    from bench_agent import build_heap
    heap = build_heap(items, churn)  # noqa: F841 - kept alive for the snapshots.
    r = {"rss_gb": rss_bytes() / 1e9}
    first = tidemark.snapshot(isolation="inline")
    r["objects"] = first.objects
    r["first_inline_ms"] = first.pause_ms
    r["inline_ms"] = statistics.median(
        tidemark.snapshot(isolation="inline").pause_ms for _ in range(repeat))
    forks = []
    for _ in range(repeat):
        s = tidemark.snapshot(isolation="fork")
        assert s.isolation == "fork", s.isolation
        forks.append((s.pause_ms, tidemark.status()["isolation"]))
    forks.sort(key=lambda f: f[0])
    pause_ms, iso = forks[len(forks) // 2]
    r["fork_ms"] = pause_ms
    r["clone_ms"] = iso["last_clone_ms"]
    r["page_tables_mb"] = iso["last_page_table_bytes"] / 1e6
    r["wall_ms"] = iso["last_child_wall_ms"]
    r["child_walk_ms"] = iso["last_child_walk_ms"]
    r["child_peak_mb"] = iso["last_child_peak_bytes"] / 1e6
    r["faults_idle_mb"] = iso["last_parent_fault_bytes"] / 1e6
    mutator = Mutator()
    mutator.thread.start()
    time.sleep(0.2)
    tidemark.snapshot(isolation="fork")
    mutator.stop = True
    mutator.thread.join()
    r["faults_mutating_mb"] = tidemark.status()["isolation"]["last_parent_fault_bytes"] / 1e6
    for mode in ("inline", "fork"):
        app = App()
        app.thread.start()
        time.sleep(0.3)
        start = time.perf_counter()
        tidemark.snapshot(isolation=mode)
        end = time.perf_counter()
        time.sleep(0.05)
        app.stop = True
        app.thread.join()
        r["stall_%s_ms" % mode] = app.longest_gap_ms(start, end)
        # Throughput while the snapshot was under way (from its start until the snapshot is
        # in hand), as a share of the app's own rate over the 0.25 s before it.
        r["throughput_%s" % mode] = app.rate(start, end) / app.rate(start - 0.25, start)
    return r


def main():
    sys.path.insert(0, HERE)
    from bench_agent import heaps_in_fresh_interpreters
    ran = heaps_in_fresh_interpreters(__file__, one, [160000, 320000, 800000])
    if ran is None:
        return
    args, results = ran
    for r in results:
        r["heap"] = "%.1fM objects%s" % (r["objects"] / 1e6, ", churned" if r["churn"] else "")
    if not args.markdown:
        print(json.dumps(results, indent=1))
        return
    print("| heap | RSS GB | inline pause ms (first after growth) | fork pause ms (clone call)"
          " | fork/inline"
          " | fork ms/GB RSS | page tables MB | ready after ms (child walk) | child peak MB"
          " | parent faults MB idle / mutating | longest app stall ms inline / fork"
          " | app throughput during snapshot inline / fork |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print("| %s | %.2f | %.0f (%.0f) | %.1f (%.1f) | %.1f%% | %.1f | %.1f | %.0f (%.0f) | %.0f"
              " | %.1f / %.1f | %.0f / %.1f | %.0f%% / %.0f%% |"
              % (r["heap"], r["rss_gb"], r["inline_ms"], r["first_inline_ms"], r["fork_ms"],
                 r["clone_ms"], 100 * r["fork_ms"] / r["inline_ms"], r["fork_ms"] / r["rss_gb"],
                 r["page_tables_mb"], r["wall_ms"], r["child_walk_ms"], r["child_peak_mb"],
                 r["faults_idle_mb"], r["faults_mutating_mb"], r["stall_inline_ms"],
                 r["stall_fork_ms"], 100 * r["throughput_inline"], 100 * r["throughput_fork"]))


if __name__ == "__main__":
    main()
