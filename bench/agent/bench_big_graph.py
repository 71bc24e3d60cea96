"""One graph snapshot of a 14 M-object heap (3.5 M slotted instances holding a tuple and a str),
isolation auto: how it was taken, its GIL pause, its wall time, the child's peak memory
(bench/agent/RESULTS.md, "A graph of a 14 M-object heap"). Needs ~4 GB of memory."""
import time, tidemark, resource
class Item(object):
    __slots__ = ("t", "s")
    def __init__(self, i):
        self.t = (i,)
        self.s = str(i)
CACHE = {"items": [Item(i) for i in range(3500000)]}
t0 = time.monotonic()
snap = tidemark.snapshot(kind="graph", isolation="auto")
wall = time.monotonic() - t0
iso = tidemark.status()["isolation"]
print("objects", snap.objects, "isolation", snap.isolation, "pause_ms", round(snap.pause_ms, 1) if hasattr(snap, "pause_ms") else "?",
      "wall_s", round(wall, 2), "child_peak_MiB", iso["last_child_peak_bytes"] >> 20, "error", iso["last_child_error"],
      "rss_MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)
