"""Allocation sites: the sampler's estimates are unbiased and name the lines that allocated the
live heap, freed allocations leave, and it works beside tracemalloc whichever starts first.
Each case runs in its own interpreter (the sampler hooks the process's allocator); run once per
CPython version by ctest."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import run_python  # noqa: E402

# Shared by every child: sites of the live heap by (type, innermost function, line).
PRELUDE = '''
import json, sys, tracemalloc
import tidemark, tidemark._native as native

def sites(kind="summary"):
    d = tidemark.load(tidemark.snapshot(kind=kind).encoded)
    s = d["sites"]
    out = {}
    for type_name, stack, nbytes, count in s["rows"]:
        frames = s["stacks"][stack]
        where = "%s:%d" % (frames[0][1], frames[0][2]) if frames else "-"
        key = "%s@%s" % (type_name, where)
        b, c = out.get(key, (0, 0))
        out[key] = (b + nbytes, c + count)
    return out, d

def line_of(fn, marker):
    import inspect
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, text in enumerate(lines) if marker in text)
'''


def run(body, timeout=300, env=None):
    # From a file, so that the child can read its own source (line numbers).
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "child.py")
        with open(path, "w") as f:
            f.write(PRELUDE + body)
        result = subprocess.run([sys.executable, path], capture_output=True, text=True,
                                timeout=timeout, env=dict(os.environ, **(env or {})))
    if result.returncode != 0:
        raise AssertionError("child failed (%d):\n%s\n%s" % (result.returncode, result.stdout,
                                                              result.stderr))
    return json.loads(result.stdout.strip().splitlines()[-1])


class SampledSitesAreUnbiased(unittest.TestCase):
    def test_two_lines_in_a_known_ratio_get_their_shares_and_sizes_within_ten_percent(self):
        out = run('''
def make_a(keep, n):
    for _ in range(n):
        keep.append(bytes(20))  # LINE A

def make_b(keep, n):
    for _ in range(n):
        keep.append(bytes(20))  # LINE B

tidemark.start_sampling(mean_bytes=4096)
a, b = [], []
make_a(a, 750000)
make_b(b, 250000)
rows, _ = sites()
key_a = "bytes@make_a:%d" % line_of(make_a, "LINE A")
key_b = "bytes@make_b:%d" % line_of(make_b, "LINE B")
result = {"a": rows.get(key_a), "b": rows.get(key_b), "size": sys.getsizeof(bytes(20))}
del a, b
rows, _ = sites()
result["after_free"] = [k for k in rows if k in (key_a, key_b)]
print(json.dumps(result))
''')
        self.assertIsNotNone(out["a"], out)
        self.assertIsNotNone(out["b"], out)
        (bytes_a, count_a), (bytes_b, count_b) = out["a"], out["b"]
        share_a = bytes_a / float(bytes_a + bytes_b)
        self.assertAlmostEqual(share_a, 0.75, delta=0.075)
        self.assertAlmostEqual(count_a / 750000.0, 1.0, delta=0.10)
        self.assertAlmostEqual(count_b / 250000.0, 1.0, delta=0.10)
        self.assertAlmostEqual(bytes_a / (750000.0 * out["size"]), 1.0, delta=0.10)
        self.assertAlmostEqual(bytes_b / (250000.0 * out["size"]), 1.0, delta=0.10)
        self.assertEqual(out["after_free"], [], "freed allocations still reported")

    def test_a_site_names_its_caller_and_graphs_name_the_sampled_objects(self):
        out = run('''
class Session(object):
    def __init__(self):
        self.token = None

def login(keep):
    keep.append(Session())  # LOGIN

def serve(keep):
    for _ in range(30000):
        login(keep)  # SERVE

tidemark.start_sampling(mean_bytes=8192)
keep = []
serve(keep)
snap, decoded = sites(kind="graph")
s = decoded["sites"]
types = decoded["types"]
stacks = [s["stacks"][st] for t, st, b, c in s["rows"] if t == "__main__.Session"]
objects = [types[decoded["type"][i]][0] for i in s["objects"]]
print(json.dumps({"stack": max(stacks, key=len)[:2] if stacks else None,
                  "login": line_of(login, "LOGIN"), "serve": line_of(serve, "SERVE"),
                  "file": __file__ if "__file__" in globals() else "<string>",
                  "object_types": sorted(set(objects)),
                  "sampling": tidemark.status()["sampling"]}))
''')
        self.assertIsNotNone(out["stack"], out)
        inner, caller = out["stack"]
        self.assertEqual([inner[1], inner[2]], ["login", out["login"]])
        self.assertEqual([caller[1], caller[2]], ["serve", out["serve"]])
        self.assertIn("__main__.Session", out["object_types"])
        self.assertTrue(out["sampling"]["on"])
        self.assertGreater(out["sampling"]["live_samples"], 0)

    def test_full_tables_count_what_they_drop_and_stay_bounded(self):
        out = run('''
tidemark.start_sampling(mean_bytes=64, max_samples=100, max_stacks=4)
keep = [bytes(100) for _ in range(20000)]
def elsewhere(n):
    return [str(i) * 3 for i in range(n)]
more = elsewhere(2000)
print(json.dumps(tidemark.status()["sampling"]))
''')
        self.assertLessEqual(out["live_samples"], 100)
        self.assertGreater(out["dropped_samples"], 0)
        self.assertLessEqual(out["stacks"], 4)


class WorksBesideTracemalloc(unittest.TestCase):
    BODY = '''
def make_x(keep):
    for _ in range(20000):
        keep.append(bytes(40))  # X

def make_y(keep):
    for _ in range(20000):
        keep.append(bytes(40))  # Y

def traced(marker_fn, marker):
    line = line_of(marker_fn, marker)
    snap = tracemalloc.take_snapshot()
    return any(s.traceback[0].lineno == line and s.size > 0
               for s in snap.statistics("lineno"))

def seen(rows, fn, marker):
    return ("bytes@%s:%d" % (fn.__name__, line_of(fn, marker))) in rows

keep = []
FIRST
make_x(keep)
rows, _ = sites()
result = {"tracemalloc_saw_x": traced(make_x, "X"), "tidemark_saw_x": seen(rows, make_x, "X")}
tracemalloc.stop()
make_y(keep)
rows, _ = sites()
rows, _ = sites() if not seen(rows, make_y, "Y") else (rows, None)
if not seen(rows, make_y, "Y"):  # Cut off and hooked in again: allocate once more.
    make_y(keep)
    rows, _ = sites()
result["tidemark_saw_y"] = seen(rows, make_y, "Y")
result["restarts"] = tidemark.status()["sampling"]["restarts"]
tidemark.stop_sampling()
tracemalloc.start()
make_x(keep)
result["tracemalloc_after_stop"] = traced(make_x, "X")
tracemalloc.stop()
print(json.dumps(result))
'''

    def check(self, first, restarts):
        out = run(self.BODY.replace("FIRST", first))
        self.assertTrue(out["tracemalloc_saw_x"], out)
        self.assertTrue(out["tidemark_saw_x"], out)
        self.assertTrue(out["tidemark_saw_y"], out)
        self.assertTrue(out["tracemalloc_after_stop"], out)
        self.assertEqual(out["restarts"], restarts, out)

    def test_tidemark_first_then_tracemalloc(self):
        # tracemalloc chains to the sampler and, stopping, puts it back: nothing is lost.
        self.check("tidemark.start_sampling(mean_bytes=4096); tracemalloc.start()", 0)

    def test_tracemalloc_first_then_tidemark(self):
        # tracemalloc's stop cuts the sampler off: the next snapshot hooks it in again.
        self.check("tracemalloc.start(); tidemark.start_sampling(mean_bytes=4096)", 1)


class WorksOverOtherAllocators(unittest.TestCase):
    """The sampler chains to whatever allocator the interpreter runs with: libc's malloc
    (PYTHONMALLOC=malloc, as memray recommends) and CPython's debug hooks, which are themselves
    a PyMem_SetAllocator hook installed before ours."""

    BODY = '''
def grow(keep):
    for _ in range(100000):
        keep.append(bytes(60))  # GROW

tidemark.start_sampling(mean_bytes=8192)
keep = []
grow(keep)
rows, _ = sites()
key = "bytes@grow:%d" % line_of(grow, "GROW")
print(json.dumps({"row": rows.get(key), "size": sys.getsizeof(bytes(60))}))
'''

    def check(self, allocator):
        out = run(self.BODY, env={"PYTHONMALLOC": allocator})
        self.assertIsNotNone(out["row"], out)
        nbytes, count = out["row"]
        self.assertAlmostEqual(count / 100000.0, 1.0, delta=0.25)
        self.assertAlmostEqual(nbytes / (100000.0 * out["size"]), 1.0, delta=0.25)

    def test_over_libc_malloc(self):
        self.check("malloc")

    def test_over_the_debug_hooks(self):
        self.check("pymalloc_debug")


@unittest.skipUnless(sys.version_info >= (3, 12), "isolated sub-interpreters: 3.12+")
class IsolatedSubinterpreters(unittest.TestCase):
    def test_interpreters_with_their_own_gil_allocating_at_once_do_not_break_the_sampler(self):
        # Two interpreters with their own GIL allocate while the main one allocates, samples
        # and snapshots: the hooks serve them all, the tables only the main interpreter.
        out = run('''
import threading
try:
    import _interpreters as interpreters
    create = lambda: interpreters.create("isolated")
    run_string = interpreters.exec
except ImportError:
    import _xxsubinterpreters as interpreters
    create = lambda: interpreters.create(isolated=True)
    run_string = interpreters.run_string

def grow(keep):
    for _ in range(50000):
        keep.append(bytes(30))  # MAIN

tidemark.start_sampling(mean_bytes=256)
subs = [create() for _ in range(2)]
code = "for r in range(3):\\n    keep = [bytes(30) for i in range(50000)]\\n"
failures = []

def in_sub(s):
    try:
        if run_string(s, code) is not None:  # 3.13 returns what was raised, if anything.
            failures.append("raised")
    except Exception as e:
        failures.append(repr(e))

threads = [threading.Thread(target=in_sub, args=(s,)) for s in subs]
for t in threads:
    t.start()
for _ in range(3):
    keep = []
    grow(keep)
    rows, _ = sites()
for t in threads:
    t.join()
for s in subs:
    interpreters.destroy(s)
print(json.dumps({"main": rows.get("bytes@grow:%d" % line_of(grow, "MAIN")),
                  "failures": failures}))
''')
        self.assertEqual(out["failures"], [])
        self.assertIsNotNone(out["main"], out)
        self.assertGreater(out["main"][1], 0)


class SamplingFromStart(unittest.TestCase):
    def test_start_samples_only_when_asked_by_argument_or_environment(self):
        code = '''
import json, tidemark
tidemark.start("tcp://127.0.0.1:9", service="sites", interval=3600, sample_bytes=SAMPLE)
on = tidemark.status()["sampling"]["on"]
mean = tidemark.status()["sampling"]["mean_bytes"]
tidemark.stop()
print(json.dumps({"on": on, "mean": mean, "after_stop": tidemark.status()["sampling"]["on"]}))
'''
        default = json.loads(run_python(code.replace("SAMPLE", "None")).stdout)
        self.assertFalse(default["on"])
        on = json.loads(run_python(code.replace("SAMPLE", "'512KiB'")).stdout)
        self.assertEqual(on, {"on": True, "mean": 512 * 1024, "after_stop": False})
        off = json.loads(run_python(code.replace("SAMPLE", "0"),
                                    env={"TIDEMARK_SAMPLE_BYTES": "64KiB"}).stdout)
        self.assertFalse(off["on"])  # The argument wins over the environment.
        from_env = run_python(code.replace("SAMPLE", "None"),
                              env={"TIDEMARK_SAMPLE_BYTES": "64KiB"})
        self.assertEqual(json.loads(from_env.stdout)["mean"], 64 * 1024)
        bad = run_python(code.replace("SAMPLE", "None"), env={"TIDEMARK_SAMPLE_BYTES": "lots"})
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("TIDEMARK_SAMPLE_BYTES", bad.stderr)

    def test_the_cli_reads_sites_and_writes_folded_stacks(self):
        cli = os.environ.get("TIDEMARK_CLI")
        if not cli:
            self.skipTest("TIDEMARK_CLI not set")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.tdmk")
            result = run_python('''
import sys, tidemark
def grow(keep):
    for _ in range(50000):
        keep.append(bytearray(64))
tidemark.start_sampling(mean_bytes=16384)
keep = []
grow(keep)
tidemark.dump(sys.argv[1])
''', args=[path])
            self.assertEqual(result.returncode, 0, result.stderr)
            table = subprocess.run([cli, "sites", path, "--type", "bytearray", "--json"],
                                   capture_output=True, text=True)
            self.assertEqual(table.returncode, 0, table.stderr)
            rows = json.loads(table.stdout)["sites"]
            self.assertTrue(rows and all(r["type"] == "bytearray" for r in rows), rows)
            self.assertTrue(rows[0]["site"].startswith("<string>:"), rows[0])
            self.assertIn(" in grow", rows[0]["site"])
            folded = subprocess.run([cli, "sites", path, "--folded"], capture_output=True,
                                    text=True)
            self.assertEqual(folded.returncode, 0, folded.stderr)
            line = next(l for l in folded.stdout.splitlines()
                        if l.rsplit(" ", 1)[0].endswith(";bytearray"))
            self.assertIn(";grow (<string>:", line)
            self.assertGreater(int(line.rsplit(" ", 1)[1]), 0)
            everything = folded.stdout.splitlines()
            self.assertGreater(len(everything), 1)
            top = subprocess.run([cli, "sites", path, "--folded", "--top", "1"],
                                 capture_output=True, text=True)
            self.assertEqual(top.stdout.splitlines(), everything[:1])  # --top is not ignored.
            plain = os.path.join(tmp, "plain.tdmk")
            run_python("import sys, tidemark; tidemark.dump(sys.argv[1])", args=[plain])
            none = subprocess.run([cli, "sites", plain], capture_output=True, text=True)
            self.assertEqual(none.returncode, 1)
            self.assertIn("was not sampling", none.stderr)


if __name__ == "__main__":
    unittest.main()
