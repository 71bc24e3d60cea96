"""Snapshots walked in a copy-on-write child (isolation "fork"): the same snapshot as inline,
a child the host never sees, that takes no lock the host may hold, that dies with its parent
and past its deadline, and leaves nothing behind (run once per CPython version by ctest).

Programs that host the agent run in fresh interpreters: a failure there is a hang, a stolen
child or a crash."""

import errno
import gc
import json
import os
import signal
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import SANITIZED, Collector, run_python, wait_for  # noqa: E402

import tidemark  # noqa: E402

# glibc with one arena and no thread cache: every malloc takes the one arena lock, which the
# hammer threads hold most of the time. A child that called malloc would soon wait forever.
ONE_ARENA = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0"}

CHILDREN_OF = """
import os
def clone_children(pid):
    found = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return found
"""


def rows(snap, skip=("tidemark.Snapshot", "Result", "tidemark._native.Result")):
    return {r.name: (r.count, r.bytes) for r in snap.types if r.name not in skip}


class Held(object):
    def __init__(self, i):
        self.i = i
        self.name = "held-%d" % i


class SameSnapshotEitherWay(unittest.TestCase):
    """A heap that does not change gives the same types, counts and bytes walked inline and
    in a child, summary and graph, with values and without."""

    @classmethod
    def setUpClass(cls):
        cls.heap = [Held(i) for i in range(20000)] + [{"k%d" % i: [i]} for i in range(5000)]

    def compare(self, **options):
        """Three snapshots of one heap, compared. The process is shared with the other test
        modules: a collection, or a thread they left running, may change the heap between two
        walks. The collector is held off, and a comparison another thread spoiled is taken
        again (at most three times; the last one's differences fail the test)."""
        gc.collect()
        gc.disable()
        try:
            for attempt in range(3):
                try:
                    return self.compare_once(**options)
                except AssertionError:
                    if attempt == 2:
                        raise
        finally:
            gc.enable()

    def compare_once(self, **options):
        # Each walk sees one earlier Snapshot alive, of the other kind: the same objects but
        # for its `isolation` text ("inline" is 2 characters longer than "fork").
        earlier = tidemark.snapshot(isolation="inline", **options)
        forked = tidemark.snapshot(isolation="fork", **options)
        del earlier
        inline = tidemark.snapshot(isolation="inline", **options)
        self.assertEqual(forked.isolation, "fork")
        self.assertEqual(inline.isolation, "inline")
        a, b = rows(forked), rows(inline)
        self.assertEqual(a.pop("str"), (b["str"][0], b["str"][1] + 2))
        del b["str"]
        differing = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        self.assertEqual(differing, {})
        self.assertGreater(a["test_isolation.Held"][0], 19999)
        if options.get("kind") == "graph":
            self.assertSameGraph(forked, inline, options.get("values", False))
        return forked, inline

    def assertSameGraph(self, forked, inline, values):
        f, i = tidemark.load(forked.encoded), tidemark.load(inline.encoded)
        self.assertEqual(len(f["address"]), len(i["address"]))
        self.assertEqual(bool(f["values"]), values)
        self.assertEqual(len(f["values"]), len(i["values"]))
        self.assertEqual(sorted(a[2] for a in f["attributes"]),  # Named references alike.
                         sorted(a[2] for a in i["attributes"]))
        self.assertEqual(len(f["names"]), len(i["names"]))

    def test_summaries_are_the_same(self):
        forked, _ = self.compare()
        # The host's pause is the snapshot's, and most of it the clone system call.
        iso = tidemark.status()["isolation"]
        self.assertEqual(iso["last_fork_pause_ms"], forked.pause_ms)
        self.assertGreater(iso["last_clone_ms"], 0)
        self.assertLessEqual(iso["last_clone_ms"], iso["last_fork_pause_ms"])

    def test_graphs_are_the_same_with_and_without_values(self):
        for values in (False, True):
            self.compare(kind="graph", values=values)

    def test_a_child_runs_no_sizer_and_says_so_and_auto_walks_inline_for_them(self):
        sizers = {"test_isolation.Held": lambda o: 1000}
        forked = tidemark.snapshot(isolation="fork", sizers=sizers)
        self.assertEqual(forked.isolation, "fork")
        self.assertGreaterEqual(forked.sizers_skipped, 20000)
        auto = tidemark.snapshot(isolation="auto", sizers=sizers)
        self.assertEqual(auto.isolation, "inline")
        self.assertEqual(auto.sizers_skipped, 0)
        self.assertGreater(auto.type("test_isolation.Held").bytes,
                           forked.type("test_isolation.Held").bytes + 19_000_000)


# The program's loops run for SECONDS, and on until the agent has walked in five children (at
# most a minute more): a loaded machine walks fewer in the same time.
RUNNING = """
def running(deadline):
    if time.monotonic() < deadline:
        return True
    walks = tidemark.status()['isolation']['fork_walks']
    return walks < 5 and time.monotonic() < deadline + 60
"""


class TheHostSeesOnlyItsOwnChildren(unittest.TestCase):
    """Snapshots every 50 ms in fork mode while the program reaps, waits for and starts
    children every way a service does: each sees exactly its own children and keeps working."""

    def run_host(self, body, seconds=4.0, env=None):
        with Collector() as collector:
            code = ("import os, signal, subprocess, sys, threading, time, json, ctypes\n"
                    "import tidemark\n" + CHILDREN_OF + "\n"
                    "tidemark.start(%r, service='host', interval=0.05, isolation='fork',\n"
                    "               child_timeout=2)  # A child stuck on a lock fails.\n"
                    "SECONDS = %r\n" % (collector.endpoint, seconds) + RUNNING + body + "\n"
                    # Each fork pauses the agent and reconnects it: on a loaded machine a
                    # connection may not complete between two forks. Once the program stops
                    # forking, the agent delivers.
                    "settle = time.monotonic() + 60\n"
                    "while tidemark.status()['delivered'] < 1 and time.monotonic() < settle:\n"
                    "    time.sleep(0.05)\n"
                    "s = tidemark.status()\n"
                    "tidemark.stop()\n"
                    "print(json.dumps({'result': result, 'isolation': s['isolation'],\n"
                    "                  'taken': s['taken']}))\n")
            done = run_python(code, timeout=120, env=env)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(done.stderr, "")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            wait_for(lambda: collector.received(), what="snapshots at the collector")
        iso = out["isolation"]
        self.assertEqual(iso["child_failed"], 0, iso["last_child_error"])
        self.assertEqual(iso["fork_refused"], 0)
        self.assertGreaterEqual(iso["fork_walks"], 5)
        return out["result"]

    def test_a_sigchld_handler_reaping_everything_reaps_only_the_programs_children(self):
        result = self.run_host("""
reaped, mine = [], []
def on_child(signum, frame):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reaped.append(pid)
signal.signal(signal.SIGCHLD, on_child)
deadline = time.monotonic() + SECONDS
while running(deadline):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.02)
        os._exit(7)
    mine.append(pid)
    time.sleep(0.25)  # A fork while a snapshot child walks ends that snapshot.
time.sleep(0.2)
result = {"stolen": sorted(set(reaped) - set(mine)), "missed": len(set(mine) - set(reaped))}
""")
        self.assertEqual(result, {"stolen": [], "missed": 0})

    def test_wait_loops_subprocess_and_multiprocessing_with_c_threads_in_malloc(self):
        result = self.run_host("""
import multiprocessing, warnings
# 3.12+ warns that this program forks with threads of its own (the allocators, the hammer).
warnings.filterwarnings("ignore", category=DeprecationWarning)
hammer = ctypes.CDLL(os.environ["TIDEMARK_MALLOC_HAMMER"])
hammer.hammer_rounds.restype = ctypes.c_ulong
hammer.hammer_start(2)
garbage = []
def allocate():
    while running(deadline):
        garbage.append([object() for _ in range(100)])
        del garbage[:-50]
deadline = time.monotonic() + SECONDS
allocators = [threading.Thread(target=allocate) for _ in range(2)]
for t in allocators:
    t.start()
waited, forked, runs, bad = [], [], 0, []
# At least 5 rounds however loaded the machine is (each waits, runs a subprocess, sleeps).
while running(deadline) or len(forked) < 5:
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    forked.append(pid)
    got, status = os.wait()
    waited.append(got)
    if os.WEXITSTATUS(status) != 3:
        bad.append(status)
    done = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True,
                          text=True, timeout=30)
    runs += done.stdout.strip() == "42" and done.returncode == 0
    time.sleep(0.2)
with multiprocessing.get_context("fork").Pool(2) as pool:
    squares = pool.map(abs, range(-50, 0))
for t in allocators:
    t.join()
hammer.hammer_stop()
result = {"waited_own": waited == forked, "bad": bad, "runs": runs, "n": len(forked),
          "pool": sum(squares), "hammered": hammer.hammer_rounds() > 1000}
""", env=ONE_ARENA)
        self.assertTrue(result["waited_own"])
        self.assertEqual(result["bad"], [])
        self.assertEqual(result["runs"], result["n"])
        self.assertGreaterEqual(result["n"], 5)
        self.assertEqual(result["pool"], sum(range(1, 51)))
        self.assertTrue(result["hammered"])

    def test_a_prefork_master_with_frozen_gc_sees_exactly_its_workers(self):
        result = self.run_host("""
import gc
gc.freeze()
workers = {}
def serve():
    # A worker: the agent restarts in it after the fork and walks in children of its own.
    end = time.monotonic() + SECONDS / 2
    junk = []
    while time.monotonic() < end:
        junk.append({"request": len(junk)})
        time.sleep(0.001)
    os._exit(0 if tidemark.status()["isolation"]["child_failed"] == 0 else 9)
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        serve()
    workers[pid] = None
deadline = time.monotonic() + SECONDS
while len([p for p in workers if workers[p] is None]) and time.monotonic() < deadline + 30:
    pid, status = os.wait()
    workers[pid] = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -status
while running(deadline):
    time.sleep(0.05)
result = {"statuses": sorted(workers.values())}
""")
        self.assertEqual(result["statuses"], [0, 0, 0])


class NothingIsLeftBehind(unittest.TestCase):
    def test_200_fork_snapshots_leave_no_zombie_descriptor_or_mapping(self):
        done = run_python(CHILDREN_OF + textwrap.dedent("""
            import json, os, tidemark
            def mappings():  # Shared ones: the child's result areas (allocators map private).
                with open("/proc/self/maps") as f:
                    return sum(1 for line in f if line.split()[1][3] == "s")
            tidemark.snapshot(isolation="fork")
            fds, maps = sorted(os.listdir("/proc/self/fd")), mappings()
            kinds = set()
            for i in range(200):
                kinds.add(tidemark.snapshot(isolation="fork",
                                            kind="graph" if i % 10 == 0 else "summary").isolation)
            print(json.dumps({"kinds": sorted(kinds), "children": clone_children(os.getpid()),
                              "fds": sorted(os.listdir("/proc/self/fd")) == fds,
                              "maps": mappings() - maps,
                              "forks": tidemark.status()["isolation"]["fork_walks"]}))
            """), timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        self.assertEqual(out["kinds"], ["fork"])
        self.assertEqual(out["children"], [])
        self.assertTrue(out["fds"])
        self.assertEqual(out["maps"], 0)
        self.assertEqual(out["forks"], 201)


# For tests of what follows a refused or failed fork: an inline walk of their heaps, however
# slow this machine, stays within the bound (test_a_fallback_to_inline_never_pauses_past_the_bound
# tests the bound itself).
LENIENT_INLINE_PAUSE = {"TIDEMARK_MAX_INLINE_PAUSE": "60"}

BIG_HEAP = """
import json, os, sys, threading, time, signal, tidemark
""" + CHILDREN_OF + """
heap = [{"n": i, "s": str(i)} for i in range(HEAP_SIZE)]
"""


class ChildrenThatFail(unittest.TestCase):
    def test_a_child_killed_mid_walk_is_reported_and_the_next_snapshot_succeeds(self):
        done = run_python(BIG_HEAP.replace("HEAP_SIZE", "600000") + """
            killed = []
            def killer():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not killed:
                    for pid in clone_children(os.getpid()):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    time.sleep(0.001)
            t = threading.Thread(target=killer)
            t.start()
            first = tidemark.snapshot(kind="graph", isolation="fork")
            t.join()
            second = tidemark.snapshot(isolation="fork")
            iso = tidemark.status()["isolation"]
            print(json.dumps({"first": first.isolation, "second": second.isolation,
                              "failed": iso["child_failed"], "error": iso["last_child_error"],
                              "objects": first.objects, "killed": len(killed)}))
            """.replace("\n            ", "\n"), timeout=120, env=LENIENT_INLINE_PAUSE)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        self.assertEqual(out["killed"], 1)
        self.assertEqual(out["failed"], 1)
        self.assertIn("killed by SIGKILL", out["first"])
        self.assertTrue(out["first"].startswith("inline (fork failed"), out["first"])
        self.assertGreater(out["objects"], 600000)  # Walked inline instead.
        self.assertEqual(out["second"], "fork")

    def test_the_parent_killed_mid_walk_leaves_no_orphan(self):
        import subprocess
        code = BIG_HEAP.replace("HEAP_SIZE", "1500000") + """
print(os.getpid(), flush=True)
tidemark.snapshot(kind="graph", isolation="fork", child_timeout=120)
"""
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        pid = int(proc.stdout.readline())
        scope = {"os": os}
        exec(CHILDREN_OF, scope)
        child = wait_for(lambda: scope["clone_children"](pid), timeout=60,
                         what="the snapshot child")[0]
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()

        def dead():
            try:
                with open("/proc/%d/status" % child) as f:
                    return "State:\tZ" in f.read()  # Dead, waiting for init to reap it.
            except FileNotFoundError:
                return True
        wait_for(dead, timeout=10, what="the orphaned child to die")

    def test_memory_cap_and_deadline_end_the_child_and_the_snapshot_is_walked_inline(self):
        capped = tidemark.snapshot(kind="graph", isolation="fork", child_memory="1MiB",
                                   max_inline_pause=60)
        self.assertIn("memory cap of 1048576 bytes", capped.isolation)
        late = tidemark.snapshot(kind="graph", isolation="fork", child_timeout=0.000001,
                                 max_inline_pause=60)
        self.assertIn("deadline", late.isolation)
        self.assertGreater(late.objects, 1000)

    def test_a_fallback_to_inline_never_pauses_past_the_bound(self):
        # A graph whose child hits its memory cap: walked inline (what an inline walk of this
        # heap takes) only within TIDEMARK_MAX_INLINE_PAUSE, else skipped, counted and said.
        done = run_python("""
import json, time, tidemark
heap = [{"k": str(i)} for i in range(300000)]
try:
    tidemark.snapshot(kind="graph", isolation="fork", child_memory="1MiB",
                      max_inline_pause=0.002)
    skipped = "taken"
except Exception as e:
    skipped = "%s: %s" % (type(e).__name__, e)
iso = tidemark.status()["isolation"]
within = tidemark.snapshot(kind="graph", isolation="fork", child_memory="1MiB",
                           max_inline_pause=60)
print(json.dumps({"skipped": skipped, "inline_walks": iso["inline_walks"],
                  "counted": iso["skipped_for_pause"], "within": within.isolation,
                  "objects": within.objects}))
""", timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        self.assertIn("skipped: no snapshot child could be had, and walking inline would hold "
                      "the GIL about", out["skipped"])
        self.assertIn("over the 2 ms bound (TIDEMARK_MAX_INLINE_PAUSE)", out["skipped"])
        self.assertIn("memory cap of 1048576 bytes", out["skipped"])
        self.assertEqual((out["inline_walks"], out["counted"]), (0, 1))
        self.assertIn("memory cap of 1048576 bytes", out["within"])
        self.assertGreater(out["objects"], 300000)

    def test_periodic_snapshots_with_forks_refused_skip_rather_than_pause_past_the_bound(self):
        done = run_python(textwrap.dedent(self.REFUSE_CLONE % {"errno": errno.EAGAIN}) + """
import json, time, tidemark
heap = [{"k": str(i)} for i in range(300000)]
tidemark.start("tcp://127.0.0.1:9", service="bound", interval=0.05, max_overhead=0,
               max_inline_pause=0.002, isolation="auto")
deadline = time.monotonic() + 60
while tidemark.status()["isolation"]["skipped_for_pause"] < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
iso = tidemark.status()["isolation"]
tidemark.stop()
print(json.dumps({"skipped": iso["skipped_for_pause"], "inline": iso["inline_walks"],
                  "refused": iso["fork_refused"]}))
""", timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        self.assertGreaterEqual(out["skipped"], 3)
        self.assertGreaterEqual(out["refused"], 1)
        self.assertEqual(out["inline"], 0)

    # Python code installing a seccomp filter: clone(2) without CLONE_THREAD (a fork; threads
    # use clone3) fails with errno %(errno)d.
    REFUSE_CLONE = """
        import ctypes, struct
        def insn(code, jt, jf, k):
            return struct.pack("HBBI", code, jt, jf, k)
        program = b"".join([
            insn(0x20, 0, 0, 0),                        # A = syscall number
            insn(0x15, 0, 3, 56),                       # clone? else allow
            insn(0x20, 0, 0, 16),                       # A = low word of the flags
            insn(0x45, 1, 0, 0x10000),                  # CLONE_THREAD? allow
            insn(0x06, 0, 0, 0x00050000 | %(errno)d),   # fail with errno
            insn(0x06, 0, 0, 0x7fff0000),               # allow
        ])
        buf = ctypes.create_string_buffer(program)
        class Prog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        prog = Prog(len(program) // 8, ctypes.addressof(buf))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
        assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()
        """

    def test_a_refused_fork_is_walked_inline_and_auto_stops_asking(self):
        done = run_python(textwrap.dedent(self.REFUSE_CLONE % {"errno": errno.EPERM}) + """
import json, tidemark
refused = tidemark.snapshot(isolation="fork")
heap = [{} for _ in range(300000)]  # Large enough for auto to want a fork.
auto = tidemark.snapshot(isolation="auto")
iso = tidemark.status()["isolation"]
print(json.dumps({"refused": refused.isolation, "objects": refused.objects,
                  "auto": auto.isolation, "count": iso["fork_refused"]}))
""", env=LENIENT_INLINE_PAUSE)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = json.loads(done.stdout)
        self.assertTrue(out["refused"].startswith("inline (fork refused: clone refused: EPERM"),
                        out["refused"])
        self.assertGreater(out["objects"], 1000)
        self.assertEqual(out["auto"], "inline")
        self.assertEqual(out["count"], 1)

    def test_a_fork_refused_for_want_of_memory_or_processes_is_retried_after_ten_walks(self):
        for number in (errno.EAGAIN, errno.ENOMEM):
            with self.subTest(errno=errno.errorcode[number]):
                done = run_python(textwrap.dedent(self.REFUSE_CLONE % {"errno": number}) + """
import json, tidemark
heap = [{} for _ in range(1000000)]  # Large enough for auto to want a fork.
first = tidemark.snapshot(isolation="auto")
skipped = [tidemark.snapshot(isolation="auto").isolation for _ in range(10)]
retried = tidemark.snapshot(isolation="auto")
iso = tidemark.status()["isolation"]
print(json.dumps({"first": first.isolation, "skipped": skipped, "objects": retried.objects,
                  "retried": retried.isolation, "count": iso["fork_refused"]}))
""", timeout=300, env=LENIENT_INLINE_PAUSE)
                self.assertEqual(done.returncode, 0, done.stderr)
                out = json.loads(done.stdout)
                refused = "inline (fork refused: clone refused: %s" % errno.errorcode[number]
                self.assertTrue(out["first"].startswith(refused), out["first"])
                self.assertEqual(out["skipped"], ["inline"] * 10)
                self.assertTrue(out["retried"].startswith(refused), out["retried"])
                self.assertGreater(out["objects"], 1000000)
                self.assertEqual(out["count"], 2)


class Settings(unittest.TestCase):
    def test_bad_isolation_settings_are_named(self):
        for env, word in (({"TIDEMARK_ISOLATION": "thread"}, "TIDEMARK_ISOLATION"),
                          ({"TIDEMARK_CHILD_MEMORY": "lots"}, "TIDEMARK_CHILD_MEMORY"),
                          ({"TIDEMARK_CHILD_TIMEOUT": "-1"}, "TIDEMARK_CHILD_TIMEOUT")):
            done = run_python("import tidemark; tidemark.snapshot()", env=env)
            self.assertNotEqual(done.returncode, 0)
            self.assertIn(word, done.stderr)
        with self.assertRaisesRegex(ValueError, "isolation must be one of auto, fork, inline"):
            tidemark.snapshot(isolation="thread")

    def test_a_child_stops_at_max_objects_and_has_no_pause_limit(self):
        capped = tidemark.snapshot(isolation="fork", max_objects=1000)
        self.assertEqual(capped.isolation, "fork")
        self.assertTrue(capped.abandoned)
        self.assertIn("object limit of 1000", capped.abandon_reason)
        unlimited = tidemark.snapshot(isolation="fork", max_pause_ms=0.001)  # It holds no GIL.
        self.assertFalse(unlimited.abandoned)

    def test_auto_forks_for_a_large_heap_and_walks_a_small_one_inline(self):
        done = run_python("""
            import json, tidemark
            tidemark.snapshot(isolation="inline")
            small = tidemark.snapshot(isolation="auto").isolation
            heap = [{"n": i} for i in range(500000)]
            tidemark.snapshot(isolation="inline")  # Measures the walk.
            large = tidemark.snapshot(isolation="auto").isolation
            print(json.dumps([small, large]))
            """, env={"TIDEMARK_ISOLATION": ""})
        self.assertEqual(done.returncode, 0, done.stderr)
        small, large = json.loads(done.stdout)
        self.assertEqual(large, "fork")
        # Under AddressSanitizer every walk costs several times its CPU time, so that even a
        # small heap's walk may be predicted longer than a fork: auto then rightly forks.
        if not SANITIZED:
            self.assertEqual(small, "inline")


if __name__ == "__main__":
    unittest.main()
