"""bench/agent: the first inline snapshot after the heap grew, against the ones after it.

    PYTHONPATH=build/python/py311 python3.11 bench/agent/bench_first_walk.py \
        [--items 160000] [--repeat 3] [--markdown]

A walk writes its columns (the address queue; for a graph, every column) into memory it
allocates at each walk. The first walk after the heap grew needs more of it than the last one
did, in pages never touched before: faulting those in while the GIL is held is what made the
first graph snapshot after growth 2.5-6x the next ones (issue 13). Each heap is built in a
fresh interpreter (160,000 items of the benchmark heap, shared/reference/meliae.md, are ~1M
objects), then, inline:
- a summary; the heap doubles; the first summary after that, and the median of --repeat more;
- the heap grows by half again; the first graph snapshot, and the median of --repeat more.
Reported: GIL pauses (ms), the first's ratio to the median, and the process's minor page
faults during the first and a median-like later walk.
"""

import json
import os
import resource
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def first_and_rest(tidemark, kind, repeat):
    """(objects, first pause, its faults, median pause of the rest, faults of the last)."""
    before = minor_faults()
    first = tidemark.snapshot(kind=kind, isolation="inline")
    first_faults = minor_faults() - before
    objects, first_ms = first.objects, first.pause_ms
    del first  # Kept, a graph's result would weigh on the walks after it.
    rest = []
    for _ in range(repeat):
        before = minor_faults()
        rest.append(tidemark.snapshot(kind=kind, isolation="inline").pause_ms)
        rest_faults = minor_faults() - before
    return objects, first_ms, first_faults, statistics.median(rest), rest_faults


def one(items, churn, repeat):
    import tidemark
    sys.path.insert(0, HERE)
    from bench_agent import build_heap
    heaps = [build_heap(items, churn)]
    tidemark.snapshot(kind="summary", isolation="inline")  # The walker now knows a count.
    heaps.append(build_heap(items, churn))
    r = {"summary": first_and_rest(tidemark, "summary", repeat)}
    heaps.append(build_heap(items, churn))
    r["graph"] = first_and_rest(tidemark, "graph", repeat)
    return r


def main():
    sys.path.insert(0, HERE)
    from bench_agent import heaps_in_fresh_interpreters
    ran = heaps_in_fresh_interpreters(__file__, one, [160000])
    if ran is None:
        return
    args, results = ran
    if not args.markdown:
        print(json.dumps(results, indent=1))
        return
    print("| heap | kind | first after growth ms | median after ms | first / median"
          " | minor faults first / later |")
    print("|---|---|---|---|---|---|")
    for r in results:
        for kind in ("summary", "graph"):
            objects, first, first_faults, median, later_faults = r[kind]
            print("| %.1fM objects%s | %s | %.0f | %.0f | %.2f | %d / %d |"
                  % (objects / 1e6, ", churned" if r["churn"] else "", kind, first, median,
                     first / median, first_faults, later_faults))


if __name__ == "__main__":
    main()
