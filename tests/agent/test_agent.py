"""The agent, tested inside real interpreters (run once per CPython version by ctest)."""

import gc
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import tidemark
from tidemark import _native

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import samples  # noqa: E402
from helpers import SANITIZED, SOURCE_ROOT, Collector, run_python, wait_for  # noqa: E402


def graph(**options):
    return tidemark.load(tidemark.snapshot(kind="graph", **options).encoded)


def index_of(g):
    return {address: i for i, address in enumerate(g["address"])}

class Buffer(object):
    """Stands for an object owning memory its layout does not show (a numpy array)."""

    def __init__(self, n):
        self.n = n


class Holder(object):
    def __init__(self, i):
        self.items = [i, i + 1, i + 2]


class Sizes(unittest.TestCase):
    def test_size_equals_getsizeof_for_every_builtin_kind(self):
        objects, coro = samples.builtin_samples()
        try:
            g = graph()
            where = index_of(g)
            for name, obj in objects.items():
                with self.subTest(kind=name):
                    self.assertIn(id(obj), where, "%s not walked" % name)
                    self.assertEqual(g["size"][where[id(obj)]], sys.getsizeof(obj))
        finally:
            coro.close()

    def test_lengths_are_recorded_for_containers_and_strings(self):
        objects = {"str": "\u20ac" * 7, "list": [1, 2, 3, 4], "dict": {"a": 1, "b": 2},
                   "tuple": (1, 2, 3), "set": {1, 2}, "bytes": b"12345"}
        g = graph()
        where = index_of(g)
        for name, obj in objects.items():
            with self.subTest(kind=name):
                self.assertEqual(g["length"][where[id(obj)]], len(obj))

    def test_instances_carry_at_least_their_getsizeof(self):
        h = Holder(1)
        g = graph()
        self.assertGreaterEqual(g["size"][index_of(g)[id(h)]], sys.getsizeof(h))


class Coverage(unittest.TestCase):
    def test_every_object_is_counted_once(self):
        g = graph()
        self.assertEqual(len(set(g["address"])), len(g["address"]))
        self.assertEqual(g["objects"], len(g["address"]))
        self.assertEqual(sum(g["size"]), g["bytes"])

    def test_known_structure_shows_exact_counts_and_bytes(self):
        before = tidemark.snapshot().type("list")  # Keep a row, not the snapshot's own list.
        holders = [Holder(i * 10 ** 6) for i in range(1000)]
        after = tidemark.snapshot()
        row = after.type(__name__ + ".Holder")
        self.assertIsNotNone(row, "type not named module-qualified")
        self.assertEqual(row.count, 1000)
        # Every Holder is built the same way: same size each, at least its getsizeof.
        self.assertEqual(row.bytes, 1000 * row.max_bytes)
        self.assertGreaterEqual(row.max_bytes, sys.getsizeof(holders[0]))
        lists = after.type("list").count - before.count
        self.assertEqual(lists, 1000 + 1)  # The Holders' lists, and `holders` itself.
        list_bytes = after.type("list").bytes - before.bytes
        self.assertEqual(list_bytes, 1000 * sys.getsizeof(holders[0].items) +
                         sys.getsizeof(holders))

    def test_dict_keys_are_found(self):
        key = "key-%d" % id(self)  # Only this dict holds it.
        d = {key: 1}
        g = graph()
        where = index_of(g)
        self.assertIn(id(key), where)
        self.assertIn(where[id(key)], g["refs"][where[id(d)]])

    def test_code_constants_and_names_are_found(self):
        namespace = {}
        exec("def f():\n    return 'const-%d' + unique_name_%d\n" % (id(self), id(self)), namespace)
        code = namespace["f"].__code__
        const = [c for c in code.co_consts if isinstance(c, str) and c.startswith("const-")][0]
        g = graph()
        where = index_of(g)
        refs = g["refs"][where[id(code)]]
        self.assertIn(where[id(code.co_consts)], refs)
        self.assertIn(where[id(const)], g["refs"][where[id(code.co_consts)]])
        self.assertIn(where[id(code.co_names)], refs)
        self.assertIn(where[id(code.co_names[0])], g["refs"][where[id(code.co_names)]])

    def test_frozen_objects_are_walked(self):
        gc.disable()
        try:
            cycle = []
            cycle.append(cycle)
            address = id(cycle)
            del cycle  # Only the collector's lists know it now.
            gc.freeze()
            try:
                self.assertIn(address, set(graph()["address"]))
            finally:
                gc.unfreeze()
        finally:
            gc.enable()
            gc.collect()

    def test_thread_frames_are_roots(self):
        local = ["frame-local-%d" % id(self)]
        g = graph()
        where = index_of(g)
        target = where[id(local)]
        # 3.11+: frames are not objects, so what they hold is the root; before: the frame.
        frame_roots = [r for r, kind in g["roots"].items() if kind == 2]
        self.assertTrue(any(r == target or target in g["refs"][r] for r in frame_roots))
        self.assertEqual(g["roots"][where[id(sys.modules)]], 3)

    def test_a_million_long_chain_does_not_overflow_the_stack(self):
        head = None
        for _ in range(1000000):
            head = [head]
        snap = tidemark.snapshot()
        self.assertGreaterEqual(snap.type("list").count, 1000000)
        del head

    def test_instance_refers_to_its_attributes_through_its_dict(self):
        h = Holder(7)
        h.__dict__  # Materialized: on 3.13 it shares the instance's inline values.
        g = graph()
        where = index_of(g)
        refs = g["refs"][where[id(h)]]
        self.assertIn(where[id(h.__dict__)], refs)
        self.assertNotIn(where[id(h.items)], refs)
        self.assertIn(where[id(h.items)], g["refs"][where[id(h.__dict__)]])

    def test_names_of_modules_functions_and_classes(self):
        g = graph()
        where = index_of(g)
        self.assertEqual(g["names"][where[id(sys)]], "sys")
        self.assertEqual(g["names"][where[id(Holder)]], __name__ + ".Holder")
        self.assertEqual(g["names"][where[id(wait_for)]], "wait_for")


class Stripping(unittest.TestCase):
    def test_values_are_absent_unless_asked(self):
        secret = "secret-%d" % id(self)
        self.assertNotIn(secret, str(graph()["values"]))
        snap = tidemark.snapshot(kind="graph")
        self.assertEqual(tidemark.load(snap.encoded)["values"], {})
        g = graph(values=True)
        self.assertEqual(g["values"][index_of(g)[id(secret)]], secret)

    def test_reference_lists_are_capped_with_the_true_count_kept(self):
        wide = list(range(1000, 1050))
        g = graph(max_refs=5)
        i = index_of(g)[id(wide)]
        self.assertEqual(len(g["refs"][i]), 5)
        self.assertEqual(g["true_ref_counts"][i], 50)

    def test_excluded_types_are_not_recorded(self):
        g = graph(exclude=["float"])
        self.assertFalse(any(g["types"][t][0] == "float" for t in g["type"]))

    def test_snapshots_the_program_holds_are_not_its_memory(self):
        gc.collect()
        before = tidemark.snapshot()
        held = [tidemark.snapshot(kind="graph", values=True) for _ in range(3)]
        encoded = sum(len(s.encoded) for s in held)
        self.assertGreater(encoded, 1 << 20)  # Large enough to see if it were counted.
        after = tidemark.snapshot()
        self.assertIsNone(after.type("tidemark.TypeRow"))
        self.assertLess(after.type("bytes").bytes - before.type("bytes").bytes, encoded // 20)
        # Each kept snapshot is a few small objects (the Snapshot, its native Result, figures).
        def results(snap):
            row = snap.type("tidemark._native.Result")
            return row.count if row else 0

        self.assertEqual(results(after), results(before) + 3 + 1)
        self.assertLess(after.objects - before.objects, 200)
        self.assertEqual(before.top(1)[0], before.types[0])  # The rows read as before.
        self.assertEqual(before.type("dict").name, "dict")
        self.assertGreater(sys.getsizeof(held[0]._result), len(held[0].encoded))

    def test_configured_sizers_add_what_objects_own_after_the_walk(self):
        buffers = [Buffer(1000 * (i + 1)) for i in range(3)]
        name = __name__ + ".Buffer"
        plain = tidemark.snapshot().type(name)
        sized = tidemark.snapshot(sizers={name: lambda b: b.n}).type(name)
        self.assertEqual(sized.bytes - plain.bytes, 6000)
        broken = tidemark.snapshot(sizers={name: lambda b: 1 // 0}).type(name)
        self.assertEqual(broken.bytes, plain.bytes)  # A failing sizer adds nothing.
        g = graph(sizers={name: lambda b: b.n})
        plain_graph = graph()
        where, plain_where = index_of(g), index_of(plain_graph)
        self.assertEqual(g["size"][where[id(buffers[2])]] -
                         plain_graph["size"][plain_where[id(buffers[2])]], 3000)

    def test_walk_past_its_object_limit_is_abandoned(self):
        snap = tidemark.snapshot(max_objects=1000)
        self.assertTrue(snap.abandoned)
        self.assertIn("object limit", snap.abandon_reason)

    def test_walk_past_its_pause_limit_is_abandoned(self):
        ballast = [[i] for i in range(100000)]  # Far more than one limit check's worth.
        snap = tidemark.snapshot(kind="graph", max_pause_ms=0.001, isolation="inline")
        self.assertTrue(snap.abandoned)
        self.assertIn("pause limit", snap.abandon_reason)
        self.assertLess(snap.objects, len(ballast))
        g = tidemark.load(snap.encoded)  # What was walked still decodes.
        self.assertEqual(len(g["address"]), g["objects"])


class HeapUnchanged(unittest.TestCase):
    def test_summary_carries_process_figures(self):
        h = tidemark.load(tidemark.snapshot().encoded)
        self.assertGreater(h["rss"], 1 << 20)
        self.assertEqual(h["python"], sys.version.split()[0])
        self.assertEqual(h["pid"], os.getpid())
        self.assertEqual(len(h["gc_counts"]), 3)

    def test_walk_allocates_no_gc_object(self):
        # The call itself allocates (its arguments), so the counts are read natively right
        # before the walk and compared with those the snapshot recorded right after it.
        gc.disable()
        try:
            result = _native.take(kind="graph", values=True)
            self.assertEqual(tidemark.load(result["result"].encoded())["gc_counts"],
                             result["gc_before"])
        finally:
            gc.enable()

    def test_object_count_and_sizes_are_unchanged(self):
        class Lazy(object):
            pass

        lazy = Lazy()
        lazy.a = 1  # Attributes without a materialized __dict__ on 3.11+.
        texts = ["caf\xe9-%d" % i for i in range(10)] + ["\u20ac" * 10]
        sampled = texts + [lazy, {}, [1, 2]]
        gc.collect()
        sizes = [sys.getsizeof(o) for o in sampled]
        count = len(gc.get_objects())
        _native.take(kind="graph", values=True)
        self.assertEqual(len(gc.get_objects()), count)
        self.assertEqual([sys.getsizeof(o) for o in sampled], sizes)  # No UTF-8 cache filled.


class Reporting(unittest.TestCase):
    def test_no_listener_neither_blocks_nor_grows_memory(self):
        wanted = 30 if SANITIZED else 100  # Dropped snapshots, after the first 20.
        code = """
            import socket, time, tidemark
            s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
            def rss():
                with open("/proc/self/statm") as f:
                    return int(f.read().split()[1]) * 4096
            tidemark.start("tcp://127.0.0.1:%d" % port, service="t", interval=0.01)
            ballast = [[i] * 10 for i in range(50000)]  # Snapshots of some size.
            def dropped():
                return tidemark.status()["dropped"]
            deadline = time.monotonic() + 150
            while dropped() < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            start_rss, start_dropped = rss(), dropped()
            loops, t0 = 0, time.monotonic()
            while dropped() < start_dropped + WANTED and time.monotonic() < deadline:
                loops += 1
            status = tidemark.status()
            tidemark.stop()
            print(status["sent"], status["dropped"] - start_dropped, rss() - start_rss, loops)
        """.replace("WANTED", str(wanted))
        result = run_python(code, timeout=240)
        self.assertEqual(result.returncode, 0, result.stderr)
        sent, dropped, growth, loops = map(int, result.stdout.split())
        self.assertEqual(sent, 0)
        self.assertGreaterEqual(dropped, wanted)
        if not SANITIZED:
            self.assertLess(growth, 8 << 20,
                            "memory grew by %d bytes over %d dropped snapshots" % (growth, dropped))
        self.assertGreater(loops, 1000, "the application thread barely ran")

    def test_snapshots_are_delivered_and_acknowledged(self):
        with Collector() as collector:
            tidemark.start(collector.endpoint, service="acked", interval=0.05, labels="env=test",
                           graph_every=3)
            try:
                wait_for(lambda: tidemark.status()["delivered"] >= 4, what="4 acknowledgements")
            finally:
                tidemark.stop()
            got = wait_for(lambda: collector.received()[:4] if len(collector.received()) >= 4
                           else None, what="4 decoded snapshots")
        self.assertTrue(all(line[0] == "acked" for line in got), got)
        self.assertEqual([int(line[2]) for line in got], [1, 2, 3, 4])
        self.assertEqual(got[2][3], "graph")
        self.assertEqual(int(got[0][1]), os.getpid())

    def test_requested_graphs_are_coalesced_and_spaced_by_the_agents_interval(self):
        with Collector("--graph-requests") as collector:
            tidemark.start(collector.endpoint, service="asked", interval=0.1,
                           graph_request_interval=1.0)
            try:
                def two_graphs():
                    graphs = [line for line in collector.received() if line[3] == "graph"]
                    return graphs if len(graphs) >= 2 else None
                graphs = wait_for(two_graphs, what="two requested graphs")
                status = tidemark.status()
            finally:
                tidemark.stop()
        # Four requests, two graphs: requests arriving while one is due join it, and a request
        # after a graph waits out the agent's interval, by the agent's own clock. (How many were
        # delayed depends on timing: whether the first three arrive before the first walk ends,
        # and whether a loaded machine delivers the last one after the interval is over.)
        self.assertEqual(len(graphs), 2, graphs)
        self.assertGreaterEqual(int(graphs[1][5]) - int(graphs[0][5]), 10**9)
        self.assertEqual(status["graph_requests"], 4)
        self.assertLessEqual(status["graph_requests_delayed"], 3)

    def test_signal_takes_a_snapshot_and_chains_to_the_previous_handler(self):
        calls = []
        previous = signal.signal(signal.SIGUSR1, lambda *_: calls.append(1))
        try:
            tidemark.start("tcp://127.0.0.1:9", service="sig", interval=3600, signal="USR1")
            try:
                os.kill(os.getpid(), signal.SIGUSR1)
                wait_for(lambda: tidemark.status()["taken"] >= 1, what="a signalled snapshot")
                wait_for(lambda: calls, what="the previous handler")
            finally:
                tidemark.stop()
            os.kill(os.getpid(), signal.SIGUSR1)  # Restored: only the Python handler runs.
            wait_for(lambda: len(calls) >= 2, what="the restored handler")
        finally:
            signal.signal(signal.SIGUSR1, previous)

    def test_process_exits_cleanly_with_the_agent_running_50_of_50(self):
        code = """
            import tidemark
            tidemark.start("tcp://127.0.0.1:9", service="exit", interval=0.001)
            junk = [dict(a=i) for i in range(20000)]
        """
        procs = []
        failures = []
        for _ in range(50):
            procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            if len(procs) >= 8:
                p = procs.pop(0)
                out, err = p.communicate(timeout=60)
                if p.returncode != 0 or out or err:
                    failures.append((p.returncode, out, err))
        for p in procs:
            out, err = p.communicate(timeout=60)
            if p.returncode != 0 or out or err:
                failures.append((p.returncode, out, err))
        self.assertEqual(failures, [])

    def test_snapshots_while_threads_churn_the_heap_never_crash_the_host(self):
        # Churns until the agent has taken `wanted` snapshots (summaries and graphs), however
        # slow the machine: the count, not the clock, ends it.
        wanted = 8 if SANITIZED else 25
        code = """
            import threading, time, tidemark
            tidemark.start("tcp://127.0.0.1:9", service="churn", interval=0.002, graph_every=2)
            done = threading.Event()
            def churn(seed):
                live = {}
                i = seed
                while not done.is_set():
                    i += 1
                    live[i % 5000] = [str(i), {"k": i}, (i, i + 1)]
                    if i % 7 == 0:
                        live.pop((i * 31) % 5000, None)
                    if i % 1000 == 0:
                        class Temp(object):
                            pass
                        t = Temp(); t.x = live; t.__dict__
            threads = [threading.Thread(target=churn, args=(n * 10**6,)) for n in range(3)]
            for t in threads: t.start()
            deadline = time.monotonic() + 90
            while tidemark.status()["taken"] < WANTED and time.monotonic() < deadline:
                time.sleep(0.01)
            done.set()
            for t in threads: t.join()
            status = tidemark.status()
            tidemark.stop()
            print(status["taken"], status["last_error"] == "" or "no collector" in status["last_error"])
        """.replace("WANTED", str(wanted))
        result = run_python(code, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        taken, healthy = result.stdout.split()
        self.assertGreaterEqual(int(taken), wanted)
        self.assertEqual(healthy, "True")

    def test_fork_restarts_the_agent_in_parent_and_child(self):
        code = """
            import os, sys, warnings, tidemark
            warnings.simplefilter("error")  # 3.12+ warns on fork with threads running.
            tidemark.start("tcp://127.0.0.1:9", service="fork", interval=0.01)
            pid = os.fork()
            if pid == 0:
                ok = tidemark.status()["running"]
                tidemark.stop()
                os._exit(0 if ok else 3)
            _, status = os.waitpid(pid, 0)
            print(os.WEXITSTATUS(status), tidemark.status()["running"])
            tidemark.stop()
        """
        result = run_python(code)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertEqual(result.stdout.split(), ["0", "True"])

    def test_bad_endpoint_is_a_clear_error(self):
        with self.assertRaises(ValueError) as raised:
            tidemark.start("nonsense://x", service="bad")
        self.assertIn("nonsense://x", str(raised.exception))
        self.assertFalse(tidemark.status()["running"])

    def test_bad_labels_name_the_item(self):
        with self.assertRaises(ValueError) as raised:
            tidemark.parse_labels("env=prod,broken")
        self.assertIn("broken", str(raised.exception))


class Run(unittest.TestCase):
    def test_run_starts_the_agent_for_a_script_with_no_code_change(self):
        with Collector() as collector, tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "app.py")
            with open(script, "w") as f:
                f.write("import sys, time\nprint('args', sys.argv[1:])\ntime.sleep(0.5)\n")
            env = {"TIDEMARK_ENDPOINT": collector.endpoint, "TIDEMARK_SERVICE": "runsvc",
                   "TIDEMARK_INTERVAL": "0.05", "TIDEMARK_LABELS": "env=ci"}
            result = subprocess.run([sys.executable, "-m", "tidemark", "run", script, "a", "b"],
                                    capture_output=True, text=True, timeout=60,
                                    env=dict(os.environ, **env))
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("args ['a', 'b']", result.stdout)
            wait_for(lambda: any(line[0] == "runsvc" for line in collector.received()),
                     what="a snapshot from the script")

    def test_run_starts_the_agent_for_a_module_and_a_console_script(self):
        with Collector() as collector, tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "leakymod.py"), "w") as f:
                f.write("import sys, time\nprint('module', sys.argv[1:])\ntime.sleep(0.4)\n")
            bindir = os.path.join(tmp, "bin")
            os.mkdir(bindir)
            script = os.path.join(bindir, "myserver")  # As pip writes console scripts.
            with open(script, "w") as f:
                f.write("#!%s\nimport sys, leakymod\n" % sys.executable)
            os.chmod(script, 0o755)
            env = dict(os.environ, TIDEMARK_ENDPOINT=collector.endpoint, TIDEMARK_INTERVAL="0.05",
                       PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
                       PYTHONPATH=tmp + os.pathsep + os.environ.get("PYTHONPATH", ""))
            env.pop("TIDEMARK_SERVICE", None)
            as_module = subprocess.run([sys.executable, "-m", "tidemark", "run", "-m", "leakymod",
                                        "x"], capture_output=True, text=True, timeout=60, env=env)
            self.assertEqual(as_module.returncode, 0, as_module.stderr)
            self.assertIn("module ['x']", as_module.stdout)
            as_script = subprocess.run([sys.executable, "-m", "tidemark", "run", "myserver"],
                                       capture_output=True, text=True, timeout=60, env=env)
            self.assertEqual(as_script.returncode, 0, as_script.stderr)
            wait_for(lambda: {"leakymod", "myserver"} <= {l[0] for l in collector.received()},
                     what="snapshots from the module and the console script")

    def test_spawned_children_report_as_their_own_instances(self):
        with Collector() as collector, tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "parent.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent("""
                    import multiprocessing, time
                    def work():
                        time.sleep(1.0)
                    if __name__ == "__main__":
                        ctx = multiprocessing.get_context("spawn")
                        p = ctx.Process(target=work); p.start(); p.join()
                        time.sleep(0.3)
                """))
            env = {"TIDEMARK_ENDPOINT": collector.endpoint, "TIDEMARK_SERVICE": "family",
                   "TIDEMARK_INTERVAL": "0.1"}
            result = subprocess.run([sys.executable, "-m", "tidemark", "run", script],
                                    capture_output=True, text=True, timeout=60,
                                    env=dict(os.environ, **env))
            self.assertEqual(result.returncode, 0, result.stderr)
            wait_for(lambda: len({l[1] for l in collector.received() if l[0] == "family"}) >= 2,
                     what="snapshots from parent and child")

    def test_demo_app_diff_names_the_leaking_type(self):
        with tempfile.TemporaryDirectory() as tmp:
            app = os.path.join(SOURCE_ROOT, "scripts", "demo_app.py")
            result = subprocess.run([sys.executable, app, "--ticks", "3", "--tick-seconds", "0",
                                     "--dump-dir", tmp], capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 0, result.stderr)
            diff = subprocess.run([os.environ["TIDEMARK_CLI"], "diff", "--json",
                                   os.path.join(tmp, "tick-000.tdmk"),
                                   os.path.join(tmp, "tick-002.tdmk")],
                                  capture_output=True, text=True, timeout=60)
            self.assertEqual(diff.returncode, 0, diff.stderr)
            import json
            top = json.loads(diff.stdout)["rows"][0]
            self.assertEqual(top["type"], "__main__.Session")
            self.assertEqual(top["count_delta"], 1000)


class Interpreters(unittest.TestCase):
    @unittest.skipUnless(sys.version_info >= (3, 12), "sub-interpreter API from 3.12")
    def test_sub_interpreters_are_refused(self):
        try:
            import _xxsubinterpreters as interpreters  # noqa: F401
        except ImportError:
            try:
                import _interpreters as interpreters  # noqa: F401
            except ImportError:
                self.skipTest("no sub-interpreter module")
        interp = interpreters.create()
        try:
            code = "import sys; sys.path[:0] = %r\nimport tidemark" % (sys.path,)
            result = interpreters.run_string(interp, code)
            # 3.13 returns the exception; 3.12 raises RunFailedError.
            self.assertIsNotNone(result)
        except Exception as e:  # noqa: BLE001
            self.assertIn("interpreter", str(e))
        finally:
            interpreters.destroy(interp)


if __name__ == "__main__":
    unittest.main()
