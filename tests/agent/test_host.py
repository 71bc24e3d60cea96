"""The agent inside programs it did not write: it must never crash its host, kill or hang a
child, print, or change what the program sees (run once per CPython version by ctest).

Each test names the way the agent once broke a host; the programs are run in fresh
interpreters, since a failure there is a crash, an abort or a hang."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import SANITIZED, Collector, run_python, wait_for  # noqa: E402

import tidemark  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def other_python():
    """A CPython of another minor version than this one, or None."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    mine = "%d.%d" % sys.version_info[:2]
    for path in sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3.*"))):
        version = re.search(r"python(3\.\d+)$", path)
        if version and version.group(1) != mine and os.access(path, os.X_OK):
            return path
    return None


class TheWalkRunsNoCollection(unittest.TestCase):
    """BytesIO.__sizeof__ allocates a bound method: called during the walk, on 3.8-3.11 it
    started a collection there, which ran finalizers on the agent's thread and freed objects
    the walk had queued (a segfault in seconds)."""

    CODE = """
        import gc, io, sys, threading, time, tidemark

        class Node(object):
            def __init__(self):
                self.me = self  # A cycle: only a collection frees it.
                self.buf = io.BytesIO()
                self.buf.write(b"x" * 1000)  # Written: sized through the buffer's __sizeof__.

        python_threads = {threading.get_ident()}
        foreign = []
        def on_gc(phase, info):
            if phase == "start" and threading.get_ident() not in python_threads:
                foreign.append(phase)
        gc.callbacks.append(on_gc)
        gc.set_threshold(1)  # The next GC allocation collects.
        tidemark.start("tcp://127.0.0.1:9", service="cycles", interval=0.01)
        deadline = time.monotonic() + 60
        while tidemark.status()["taken"] < %(snapshots)d and time.monotonic() < deadline:
            garbage = [Node() for _ in range(500)]
            del garbage
        taken = tidemark.status()["taken"]
        tidemark.stop()
        gc.set_threshold(700)
        one = Node()
        g = tidemark.load(tidemark.snapshot(kind="graph").encoded)
        size = g["size"][g["address"].index(id(one.buf))]
        print(taken, len(foreign), size == sys.getsizeof(one.buf))
    """

    def test_snapshots_of_cycles_holding_written_bytesio_never_collect_on_the_agents_thread(self):
        result = run_python(self.CODE % {"snapshots": 10 if SANITIZED else 40}, timeout=120)
        self.assertEqual(result.returncode, 0, "host died: %s" % result.stderr[-2000:])
        taken, foreign, exact = result.stdout.split()
        self.assertGreaterEqual(int(taken), 10)
        self.assertEqual(foreign, "0", "collections ran on the agent's thread")
        self.assertEqual(exact, "True", "BytesIO is still sized by its own __sizeof__")

    def test_snapshot_calls_from_python_survive_collections_due_during_the_walk(self):
        code = """
            import gc, io, tidemark
            class Node(object):
                def __init__(self):
                    self.me = self
                    self.buf = io.BytesIO()
                    self.buf.write(b"x" * 1000)
            gc.set_threshold(1)
            for kind in ("summary", "graph") * 5:
                garbage = [Node() for _ in range(20000)]
                del garbage
                tidemark.snapshot(kind=kind)
            print("survived")
        """
        result = run_python(code, timeout=300)
        self.assertEqual(result.returncode, 0, "host died: %s" % result.stderr[-2000:])
        self.assertEqual(result.stdout.strip(), "survived")


class ForkedChildren(unittest.TestCase):
    def test_children_that_close_every_descriptor_live_and_report_30_of_30(self):
        # Daemonizing code closes every descriptor after fork: an agent already started in the
        # child had its ZeroMQ descriptors closed under it and aborted the child.
        with Collector() as collector:
            code = """
                import os, sys, time, tidemark
                tidemark.start(sys.argv[1], service="closer", interval=0.02)
                pids = []
                for i in range(30):
                    pid = os.fork()
                    if pid == 0:
                        os.closerange(3, 4096)
                        junk = [str(n) for n in range(5000)]
                        # Past its probation it connects, after closerange, and delivers.
                        deadline = time.monotonic() + 60
                        while (tidemark.status()["delivered"] < 1
                               and time.monotonic() < deadline):
                            time.sleep(0.01)
                        sys.exit(0)
                    pids.append(pid)
                statuses = [os.waitpid(pid, 0)[1] for pid in pids]
                tidemark.stop()
                print(" ".join(str(s) for s in statuses))
            """
            result = run_python(code, timeout=120, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stderr, "")
            self.assertEqual(result.stdout.split(), ["0"] * 30)
            def pids():
                return {line[1] for line in collector.received() if line[0] == "closer"}
            wait_for(lambda: len(pids()) == 31, timeout=30,
                     what="every child past its probation to report too: %s" % len(pids()))

    def test_a_daemon_double_forked_with_descriptors_closed_reports(self):
        # python-daemon's pattern: fork, setsid, fork, chdir, close every descriptor but the
        # ones kept, stdio on /dev/null; then the service's work.
        with Collector() as collector:
            code = """
                import os, sys, time, tidemark
                tidemark.start(sys.argv[1], service="daemon", interval=0.05)
                r, w = os.pipe()
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() != 0:
                        os._exit(0)
                    os.chdir("/")
                    os.closerange(3, w)
                    os.closerange(w + 1, 65536)
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    deadline = time.monotonic() + 30
                    while tidemark.status()["delivered"] < 3 and time.monotonic() < deadline:
                        junk = [object() for _ in range(1000)]
                        time.sleep(0.01)
                    os.write(w, b"%d %d" % (os.getpid(), tidemark.status()["delivered"]))
                    sys.exit(0)
                os.close(w)
                print(os.read(r, 100).decode())
            """
            result = run_python(code, timeout=120, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(len(result.stdout.split()), 2, "the daemon died: %r" % result.stdout)
            pid, delivered = result.stdout.split()
            self.assertGreaterEqual(int(delivered), 3)
            wait_for(lambda: any(line[1] == pid for line in collector.received()),
                     what="the daemon's snapshots")

    def test_preexec_fn_children_run_their_program_unchanged(self):
        code = """
            import subprocess, sys, tidemark
            tidemark.start("tcp://127.0.0.1:9", service="preexec", interval=0.01)
            outputs = set()
            for _ in range(20):
                r = subprocess.run([sys.executable, "-c", "import sys; sys.stdout.write('apple')"],
                                   preexec_fn=lambda: None, capture_output=True)
                outputs.add((r.returncode, r.stdout, r.stderr))
            tidemark.stop()
            print(sorted(outputs))
        """
        result = run_python(code, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertEqual(result.stdout.strip(), "[(0, b'apple', b'')]")

    def test_exit_after_a_fork_python_did_not_see_is_prompt(self):
        # fork() through ctypes runs no fork hook: the child inherits a reporter whose threads
        # are not there. stop() at exit must not join them nor terminate their context.
        code = """
            import ctypes, os, sys, time, tidemark
            tidemark.start("tcp://127.0.0.1:9", service="ctypes", interval=0.01)
            time.sleep(0.05)
            pid = ctypes.CDLL(None).fork()
            if pid == 0:
                sys.exit(7)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    print(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1)
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, 9)
                print("hung")
            tidemark.stop()
        """
        result = run_python(code, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "7")

    def test_sequence_numbers_of_a_forking_parent_never_repeat(self):
        with Collector() as collector:
            code = """
                import os, sys, time, tidemark
                tidemark.start(sys.argv[1], service="forker", interval=0.02)
                deadline = time.monotonic() + 30
                forks = 0
                while (tidemark.status()["delivered"] < 15 or forks < 30) and \\
                        time.monotonic() < deadline:
                    pid = os.fork()
                    if pid == 0:
                        os._exit(0)
                    os.waitpid(pid, 0)
                    forks += 1
                    time.sleep(0.01)
                tidemark.stop()
                print(os.getpid(), forks)
            """
            result = run_python(code, timeout=120, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            pid, forks = result.stdout.split()
            self.assertGreaterEqual(int(forks), 30)
            seqs = [int(line[2]) for line in collector.received() if line[1] == pid]
            self.assertGreaterEqual(len(seqs), 15)
            self.assertEqual(len(seqs), len(set(seqs)), "repeated sequence numbers: %s" % seqs)
            self.assertEqual(seqs, sorted(seqs))

    def test_fork_never_warns_and_the_parent_keeps_reporting(self):
        # 3.12+ warns when os.fork() runs with other threads; it counts them after the
        # after-fork hooks, so the agent's thread must not be back by then.
        code = """
            import os, time, warnings, tidemark
            tidemark.start("tcp://127.0.0.1:9", service="nowarn", interval=0.01)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(20):
                    pid = os.fork()
                    if pid == 0:
                        os._exit(0)
                    os.waitpid(pid, 0)
                    time.sleep(0.005)
            taken = tidemark.status()["taken"]
            time.sleep(0.2)
            status = tidemark.status()
            tidemark.stop()
            print(len(caught), status["state"], status["taken"] > taken)
        """
        result = run_python(code)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertEqual(result.stdout.split(), ["0", "connected", "True"])

    def test_watch_children_stops_the_forking_parent_and_every_child_reports(self):
        with Collector() as collector:
            code = """
                import os, sys, time, tidemark
                tidemark.start(sys.argv[1], service="prefork", interval=0.1, watch="children")
                while tidemark.status()["delivered"] < 1:
                    time.sleep(0.01)
                pids = []
                for _ in range(3):  # A prefork master: it serves nothing once it forked.
                    pid = os.fork()
                    if pid == 0:
                        deadline = time.monotonic() + 20
                        while tidemark.status()["delivered"] < 1 and time.monotonic() < deadline:
                            time.sleep(0.01)
                        os._exit(0 if tidemark.status()["delivered"] >= 1 else 3)
                    pids.append(pid)
                codes = [os.waitpid(p, 0)[1] >> 8 for p in pids]
                print(os.getpid(), tidemark.status()["state"].replace(" ", "-"),
                      ",".join(map(str, codes)))
            """
            result = run_python(code, timeout=60, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            parent, state, codes = result.stdout.split()
            self.assertEqual(state, "children-only")
            self.assertEqual(codes, "0,0,0", "every child reported")
            self.assertTrue([b for b in collector.goodbyes() if b[1] == parent],
                            "the parent said goodbye at its first fork")

    def test_forked_children_wait_a_jittered_interval_before_their_first_snapshot(self):
        with Collector() as collector:
            code = """
                import os, sys, time, tidemark
                tidemark.start(sys.argv[1], service="brood", interval=0.4)
                pids = []
                for _ in range(12):
                    forked = time.time_ns()
                    pid = os.fork()
                    if pid == 0:
                        # Long enough for a jittered first snapshot (at most an interval
                        # after fork) to arrive on a loaded machine before the child exits.
                        time.sleep(3.0)
                        sys.exit(0)
                    pids.append((pid, forked))
                for pid, _ in pids:
                    os.waitpid(pid, 0)
                tidemark.stop()
                print(" ".join("%d:%d" % p for p in pids))
            """
            result = run_python(code, timeout=60, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            forked = dict(tuple(int(x) for x in item.split(":")) for item in result.stdout.split())
            first = {}
            for line in collector.received():
                pid, ts = int(line[1]), int(line[5])
                if pid in forked:
                    first[pid] = min(first.get(pid, ts), ts)
            self.assertEqual(set(first), set(forked), "every child reported")
            delays = sorted((first[p] - forked[p]) / 1e9 for p in forked)
            self.assertGreaterEqual(delays[0], 0.2, "no child walks before half an interval")
            self.assertGreater(delays[-1] - delays[0], 0.05, "first snapshots are spread")


class Overhead(unittest.TestCase):
    def test_walks_hold_the_gil_at_most_the_configured_share_of_the_time(self):
        code = """
            import time, tidemark
            ballast = [{"k%d" % i: [i, str(i)]} for i in range(150000)]  # Walks of some ms.
            tidemark.start("tcp://127.0.0.1:9", service="budget", interval=0.01,
                           max_overhead="20%", isolation="inline")  # Walks that hold the GIL.
            t0 = time.monotonic()
            while time.monotonic() - t0 < 150:
                status = tidemark.status()
                # Several walks, and a window long enough for the last one's share to be small.
                if status["taken"] >= 4 and time.monotonic() - t0 > 20 * status["last_pause_ms"] / 1e3:
                    break
                sum(range(1000))
            elapsed = time.monotonic() - t0
            tidemark.stop()
            print(status["taken"], status["total_pause_ms"], status["intervals_stretched"], elapsed)
        """
        result = run_python(code, timeout=200, env={"TIDEMARK_MAX_OVERHEAD": ""})
        self.assertEqual(result.returncode, 0, result.stderr)
        taken, total_pause_ms, stretched, elapsed = result.stdout.split()
        self.assertGreater(int(stretched), 0)
        self.assertGreaterEqual(int(taken), 4)
        share = float(total_pause_ms) / 1000.0 / float(elapsed)
        # Asked for an interval of 10 ms; walks of several ms would hold the GIL nearly all the
        # time. At 20%, the walks in the window hold it 20% plus at most one walk's share of
        # the window (5%).
        self.assertLess(share, 0.3, "walks held the GIL %.1f%% of the time" % (share * 100))

    def test_the_budget_counts_the_cpu_of_snapshot_children_too(self):
        # Forked walks hold the GIL for a few milliseconds only; what the host's machine pays is
        # the child's walk and encode. Counting only the GIL, the budget never stretched the
        # interval and a child walked the heap every 10 ms.
        code = """
            import time, tidemark
            ballast = [{"k%d" % i: [i, str(i)]} for i in range(150000)]
            tidemark.start("tcp://127.0.0.1:9", service="budget", interval=0.01,
                           max_overhead="10%", isolation="fork")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 150:
                status = tidemark.status()
                last = status["last_thread_cpu_ms"] + status["last_child_cpu_ms"]
                if status["taken"] >= 4 and time.monotonic() - t0 > 20 * last / 1e3:
                    break
                time.sleep(0.001)
            elapsed = time.monotonic() - t0
            tidemark.stop()
            print(status["taken"], status["total_cpu_ms"], status["last_child_cpu_ms"],
                  status["intervals_stretched"], status["isolation"]["fork_walks"], elapsed)
        """
        result = run_python(code, timeout=200, env={"TIDEMARK_MAX_OVERHEAD": ""})
        self.assertEqual(result.returncode, 0, result.stderr)
        taken, total_cpu_ms, child_cpu_ms, stretched, forks, elapsed = result.stdout.split()
        self.assertGreaterEqual(int(forks), 4)
        self.assertGreater(float(child_cpu_ms), 0)
        self.assertGreater(int(stretched), 0)
        share = float(total_cpu_ms) / 1000.0 / float(elapsed)
        # 10%, plus at most one snapshot's share of the window (5%).
        self.assertLess(share, 0.15, "snapshots cost %.1f%% of a CPU" % (share * 100))

    def test_a_bad_overhead_setting_is_named(self):
        for value in ("lots", "150%", "-1"):
            with self.assertRaises(ValueError) as raised:
                tidemark.start("tcp://127.0.0.1:9", service="x", max_overhead=value)
            self.assertIn("max_overhead", str(raised.exception))


class ImportedByAnotherInterpreter(unittest.TestCase):
    def test_a_build_for_another_version_says_so_instead_of_a_circular_import(self):
        # A py311 package imported by 3.12 said "partially initialized module ... (most likely
        # due to a circular import)". Here: this build with its module renamed for another.
        import shutil
        with tempfile.TemporaryDirectory() as tmp:
            package = os.path.join(tmp, "tidemark")
            shutil.copytree(os.path.dirname(tidemark.__file__), package)
            for name in os.listdir(package):
                if name.startswith("_native."):
                    parts = name.split(".")
                    parts[1] = "cpython-399-x86_64-linux-gnu"
                    os.rename(os.path.join(package, name), os.path.join(package, ".".join(parts)))
            done = subprocess.run([sys.executable, "-c", "import tidemark"], cwd=tmp,
                                  capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, PYTHONPATH=tmp))
            self.assertNotEqual(done.returncode, 0)
            self.assertNotIn("circular import", done.stderr)
            self.assertIn("built for cpython-399, not for this interpreter (cpython-%d%d"
                          % sys.version_info[:2], done.stderr)


class Notices(unittest.TestCase):
    CODE = """
        import logging, sys, time, tidemark
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())
        logging.getLogger("tidemark").addHandler(Keep())
        logging.getLogger("tidemark").setLevel(logging.INFO)
        tidemark.start(sys.argv[1], service="quiet", interval=0.1, warn_after=0.5)
        def wait(what, seconds):
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                if any(what in r for r in records):
                    return
                time.sleep(0.02)  # Python runs: pending calls are handled.
        wait("no snapshot acknowledged", 30)
        at_warning = tidemark.status()["dropped"]
        t0 = time.monotonic()  # More silence, more drops (a sanitized walk is slow: no count).
        while tidemark.status()["dropped"] < at_warning + 5 and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        print("READY", at_warning, flush=True)
        sys.stdin.readline()  # The test starts a collector on that endpoint.
        wait("again", 30)
        print(tidemark.status()["dropped"])
        tidemark.stop()
        for r in records:
            print("LOG", r)
    """

    def test_silence_is_one_warning_and_delivery_resuming_another(self):
        with Collector() as probe:
            endpoint = probe.endpoint  # A free port, released when the probe exits.
        agent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(self.CODE), endpoint],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            ready = agent.stdout.readline().split()
            self.assertEqual(ready[0], "READY")
            with Collector(endpoint) as collector:
                agent.stdin.write("go\n")
                agent.stdin.flush()
                out, err = agent.communicate(timeout=60)
                self.assertEqual(agent.returncode, 0, err)
                self.assertTrue(collector.received())
        finally:
            if agent.poll() is None:
                agent.kill()
        lines = out.splitlines()
        logged = [line[4:] for line in lines if line.startswith("LOG ")]
        silent = [m for m in logged if "no snapshot acknowledged" in m]
        self.assertEqual(len(silent), 1, logged)
        self.assertIn(endpoint, silent[0])
        self.assertIn("dropped so far", silent[0])
        self.assertEqual(len([m for m in logged if "acknowledged by %s again" % endpoint in m]), 1,
                         logged)
        self.assertGreaterEqual(int(lines[0]), int(ready[1]) + 5, "the drops went on, unlogged")
        self.assertEqual(err, "", "nothing printed without TIDEMARK_DEBUG")

    def test_a_bad_warn_after_is_named(self):
        with self.assertRaises(ValueError) as raised:
            tidemark.start("tcp://127.0.0.1:9", service="x", warn_after=0)
        self.assertIn("warn_after", str(raised.exception))


class Signals(unittest.TestCase):
    def test_trigger_signal_keeps_interrupting_blocking_calls_like_the_apps_handler(self):
        code = """
            import os, signal, threading, time, tidemark
            class Interrupted(Exception):
                pass
            def handler(signum, frame):
                raise Interrupted()
            signal.signal(signal.SIGUSR1, handler)
            tidemark.start("tcp://127.0.0.1:9", service="sig", interval=3600, signal="USR1")
            r, w = os.pipe()
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            fallback = threading.Timer(5.0, os.write, (w, b"x"))
            fallback.start()
            t0 = time.monotonic()
            try:
                os.read(r, 1)
                print("restarted", round(time.monotonic() - t0, 2))
            except Interrupted:
                print("interrupted", round(time.monotonic() - t0, 2))
            fallback.cancel()
            tidemark.stop()
        """
        result = run_python(code, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        outcome, seconds = result.stdout.split()
        self.assertEqual(outcome, "interrupted")
        self.assertLess(float(seconds), 3.0)


    def test_a_program_that_takes_its_signals_with_sigwait_gets_every_one(self):
        # Supervisors block their signals and consume them with sigwait / signalfd: a
        # process-directed signal goes to any thread that does not block it, so a thread of the
        # agent with an empty mask took it and died of it (exit 138). Also when the program
        # starts the agent before it masks its signals.
        code = """
            import os, signal, sys, tidemark
            early = sys.argv[2] == "early"
            if early:
                tidemark.start(sys.argv[1], service="sigwait", interval=0.05)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
            if not early:
                tidemark.start(sys.argv[1], service="sigwait", interval=0.05)
            while tidemark.status()["delivered"] < 1:
                signal.sigtimedwait({signal.SIGUSR1}, 0.01)
            received = 0
            for n in range(21):
                os.kill(os.getpid(), signal.SIGUSR1 if n % 2 else signal.SIGTERM)
                received += signal.sigwait({signal.SIGUSR1, signal.SIGTERM}) in (
                    signal.SIGUSR1, signal.SIGTERM)
            tidemark.stop()
            print("received", received)
        """
        with Collector() as collector:
            for when in ("early", "late"):
                with self.subTest(when=when):
                    result = run_python(code, args=[collector.endpoint, when])
                    self.assertEqual((result.returncode, result.stdout, result.stderr),
                                     (0, "received 21\n", ""))


class OurDescriptorsUnderTheProgram(unittest.TestCase):
    """The agent's descriptors live in someone else's process: the program may close every
    descriptor, close 0-2 and expect them back, or put its own files at our numbers. The agent
    never holds 0-2, never touches a descriptor that is no longer its own, and connects again.
    (With libzmq inside the host, each of these aborted it, hung it at exit or wrote an eventfd
    counter into the program's stderr.)"""

    def test_closing_every_descriptor_in_the_process_keeps_it_running_and_reporting(self):
        code = """
            import os, sys, time, tidemark
            tidemark.start(sys.argv[1], service="closer", interval=0.05)
            while tidemark.status()["delivered"] < 1:
                time.sleep(0.01)
            os.closerange(3, 65536)
            before = tidemark.status()["delivered"]
            deadline = time.monotonic() + 30
            while tidemark.status()["delivered"] < before + 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            print("reporting", tidemark.status()["delivered"] >= before + 3)
            tidemark.stop()
        """
        with Collector() as collector:
            result = run_python(code, args=[collector.endpoint], timeout=60)
        self.assertEqual((result.returncode, result.stdout, result.stderr),
                         (0, "reporting True\n", ""))

    def test_a_daemon_that_closes_everything_without_forking_keeps_ticking(self):
        # python-daemon started by systemd or inetd (a socket on stdin) does not fork: it
        # closes every descriptor up to the hard limit and points 0-2 at /dev/null.
        code = """
            import os, resource, sys, time, tidemark
            out = sys.argv[2]
            tidemark.start(sys.argv[1], service="daemon", interval=0.05)
            while tidemark.status()["delivered"] < 1:
                time.sleep(0.01)
            os.umask(0o022)
            os.chdir("/")
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            os.closerange(3, hard if 0 < hard < 1 << 20 else 1 << 20)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            before = tidemark.status()["delivered"]
            ticks = 0
            deadline = time.monotonic() + 30
            while ticks < 10 or (tidemark.status()["delivered"] < before + 3
                                 and time.monotonic() < deadline):
                ticks += 1
                time.sleep(0.05)
            with open(out, "w") as f:
                f.write("ticks %s reporting %s" % (ticks >= 10,
                                                  tidemark.status()["delivered"] >= before + 3))
            tidemark.stop()
        """
        import socket
        with Collector() as collector, tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out")
            ours, theirs = socket.socketpair()
            with ours, theirs:
                done = subprocess.run([sys.executable, "-c", textwrap.dedent(code),
                                       collector.endpoint, out], stdin=theirs,
                                      capture_output=True, text=True, timeout=90)
            self.assertEqual(done.returncode, 0, done.stderr)
            with open(out) as f:
                self.assertEqual(f.read(), "ticks True reporting True")

    def test_a_program_that_closes_2_forks_and_dups_it_back_gets_its_stderr(self):
        # What CPython's test_subprocess does: close 2, fork, dup2 the saved stderr back.
        code = """
            import os, sys, time, tidemark
            saved = os.dup(2)
            os.close(2)
            tidemark.start(sys.argv[1], service="fd2", interval=0.05)
            while tidemark.status()["delivered"] < 2:
                time.sleep(0.01)
            def is_open(fd):
                try:
                    os.fstat(fd)
                    return True
                except OSError:
                    return False
            held = is_open(2)  # Asked without opening a descriptor (listdir would take 2).
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            os.dup2(saved, 2)
            os.write(2, b"mine\\n")
            before = tidemark.status()["delivered"]
            while tidemark.status()["delivered"] < before + 2:
                time.sleep(0.01)
            print(held)
        """
        with Collector() as collector:
            result = run_python(code, args=[collector.endpoint], timeout=60)
        self.assertEqual((result.returncode, result.stdout, result.stderr),
                         (0, "False\n", "mine\n"))

    def test_a_descriptor_of_ours_replaced_by_the_program_is_never_written(self):
        # The program dup2()s its own pipe over the agent's socket: the agent must write nothing
        # into the pipe, and connect again.
        code = """
            import os, stat, sys, time, tidemark
            tidemark.start(sys.argv[1], service="dup2", interval=0.05)
            while tidemark.status()["delivered"] < 1:
                time.sleep(0.01)
            def link(fd):
                try:
                    return os.readlink("/proc/self/fd/" + fd)
                except OSError:  # listdir's own descriptor, closed by now.
                    return ""
            # The program has no socket of its own: every one is the agent's.
            sockets = [int(fd) for fd in os.listdir("/proc/self/fd")
                       if link(fd).startswith("socket:")]
            r, w = os.pipe()
            os.set_blocking(r, False)
            for fd in sockets:
                os.dup2(w, fd)
            before = tidemark.status()["delivered"]
            deadline = time.monotonic() + 30
            while tidemark.status()["delivered"] < before + 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                leaked = len(os.read(r, 65536))
            except BlockingIOError:
                leaked = 0
            print(len(sockets), leaked, tidemark.status()["delivered"] >= before + 3)
            tidemark.stop()
        """
        with Collector() as collector:
            result = run_python(code, args=[collector.endpoint], timeout=60)
        self.assertEqual((result.returncode, result.stdout, result.stderr),
                         (0, "1 0 True\n", ""))


class Descriptors(unittest.TestCase):
    # Lists the open descriptors without opening one (os.listdir would).
    FD_STATUS = ("import os\n"
                 "def is_open(fd):\n"
                 "    try:\n"
                 "        os.fstat(fd)\n"
                 "        return True\n"
                 "    except OSError:\n"
                 "        return False\n"
                 "print(','.join(str(fd) for fd in range(1024) if is_open(fd)))\n")

    def test_a_subprocess_inherits_no_descriptor_of_the_agent(self):
        with Collector() as collector:
            code = """
                import os, subprocess, sys, time, tidemark
                def open_fds():
                    return {fd for fd in range(1024) if os.path.exists("/proc/self/fd/%d" % fd)}
                before = open_fds()
                tidemark.start(sys.argv[1], service="fds", interval=0.02)
                tidemark.trigger()
                while tidemark.status()["delivered"] < 1:
                    pass
                # Held: open in two looks 50 ms apart (a file read once, such as
                # /proc/self/cgroup, is open for a few microseconds: that one is not held).
                first = open_fds()
                time.sleep(0.05)
                mine = (first & open_fds()) - before
                out = subprocess.run([sys.executable, "-c", sys.argv[2]], close_fds=False,
                                     capture_output=True, text=True).stdout.strip()
                held = sorted(os.readlink("/proc/self/fd/%d" % fd) for fd in mine)
                tidemark.stop()
                print(out)
                print("\\n".join(held))
            """
            result = run_python(code, args=[collector.endpoint, self.FD_STATUS])
            self.assertEqual(result.returncode, 0, result.stderr)
            child_fds, *held = result.stdout.split("\n")[:-1]
            # Its one socket (no ZeroMQ library in the host), its eventfd, and the files it
            # reads at every snapshot, kept open (/proc/self/statm and status, /proc/meminfo,
            # the cgroup's memory files): read-only files, a fixed few.
            sockets = [h for h in held if h.startswith("socket:")]
            events = [h for h in held if h == "anon_inode:[eventfd]"]
            files = [h for h in held if h.startswith(("/proc/", "/sys/fs/cgroup/"))]
            self.assertEqual((len(sockets), len(events)), (1, 1), held)
            self.assertEqual(len(sockets) + len(events) + len(files), len(held), held)
            self.assertLessEqual(len(files), 16, held)
            self.assertEqual(child_fds, "0,1,2", "close_fds=False passes only inheritable ones")

    def test_python_children_of_a_run_program_see_only_the_descriptors_passed(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "parent.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent("""
                    import os, subprocess, sys
                    r, w = os.pipe()
                    out = subprocess.run([sys.executable, "-c", sys.argv[1]], pass_fds=[w],
                                         capture_output=True, text=True)
                    print(out.stdout.strip(), w, out.returncode)
                """))
            # A long interval: the child lists its descriptors well within its probation.
            env = dict(os.environ, TIDEMARK_ENDPOINT="tcp://127.0.0.1:9", TIDEMARK_INTERVAL="10")
            result = subprocess.run([sys.executable, "-m", "tidemark", "run", script,
                                     self.FD_STATUS], capture_output=True, text=True, env=env,
                                    timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
            child_fds, passed, status = result.stdout.split()
            self.assertEqual(status, "0")
            self.assertEqual(child_fds, "0,1,2,%s" % passed)


class RunIsInvisible(unittest.TestCase):
    """`python -m tidemark run PROGRAM` must look like `python PROGRAM` from inside."""

    PROGRAM = """
        import json, os, subprocess, sys
        print(json.dumps({"path": sys.path, "file": __file__, "argv": sys.argv,
                          "tidemark_on_path": any(os.path.isdir(os.path.join(p, "tidemark"))
                                                  for p in sys.path if p)}))
        if len(sys.argv) > 2:
            child = subprocess.run([sys.argv[2], "-c", "import json, sys; print(json.dumps("
                                    "[sys.path, 'tidemark' in sys.modules]))"],
                                   capture_output=True, text=True)
            print(child.stdout.strip() or child.stderr)
        sys.stdout.flush()
        if sys.argv[1] == "raise":
            raise ValueError("boom")
        sys.exit(int(sys.argv[1]))
    """

    def run_both(self, cwd, script, *args):
        plain_env = dict(os.environ)
        plain_env.pop("TIDEMARK_ENDPOINT", None)
        agent_env = dict(os.environ, TIDEMARK_ENDPOINT="tcp://127.0.0.1:9",
                         TIDEMARK_INTERVAL="0.05")
        # The agent's package stays importable in both (the test's PYTHONPATH): the point is
        # that `run` adds nothing.
        plain = subprocess.run([sys.executable, script] + list(args), cwd=cwd,
                               capture_output=True, text=True, env=plain_env, timeout=60)
        agent = subprocess.run([sys.executable, "-m", "tidemark", "run", script] + list(args),
                               cwd=cwd, capture_output=True, text=True, env=agent_env,
                               timeout=60)
        return plain, agent

    def test_sys_path_file_argv_traceback_and_exit_status_are_those_of_a_plain_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.mkdir(os.path.join(tmp, "app"))
            with open(os.path.join(tmp, "app", "main.py"), "w") as f:
                f.write(textwrap.dedent(self.PROGRAM))
            for script, arg in (("app/main.py", "3"), (os.path.join(tmp, "app", "main.py"), "0"),
                                ("app/main.py", "raise")):
                with self.subTest(script=script, arg=arg):
                    plain, agent = self.run_both(tmp, script, arg)
                    self.assertEqual(agent.returncode, plain.returncode)
                    self.assertEqual(agent.stdout, plain.stdout)
                    self.assertEqual(agent.stderr, plain.stderr)

    def test_children_get_nothing_but_the_agent_and_another_python_gets_nothing(self):
        others = [sys.executable] + ([other_python()] if other_python() else [])
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "main.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent(self.PROGRAM))
            for interpreter in others:
                with self.subTest(child=interpreter):
                    plain, agent = self.run_both(tmp, script, "0", interpreter)
                    self.assertEqual(agent.returncode, 0, agent.stderr)
                    plain_child = json.loads(plain.stdout.splitlines()[1])
                    agent_child = json.loads(agent.stdout.splitlines()[1])
                    self.assertEqual(agent_child[0], plain_child[0], "the child's sys.path")
                    same_version = interpreter == sys.executable
                    self.assertEqual(agent_child[1], same_version,
                                     "the agent runs in a child of the same version only")

    def test_bad_settings_stop_run_before_the_program_with_status_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "main.py")
            with open(script, "w") as f:
                f.write("print('ran')\n")
            for name, value in (("TIDEMARK_INTERVAL", "abc"),
                                ("TIDEMARK_ENDPOINT", "localhost:7878"),
                                ("TIDEMARK_WATCH", "everyone"),
                                ("TIDEMARK_SAMPLE_BYTES", "lots"),
                                ("TIDEMARK_VALUES", "maybe"),
                                ("TIDEMARK_MAX_INLINE_PAUSE", "-1"),
                                ("TIDEMARK_CHILD_MEMORY", "tiny"),
                                ("TIDEMARK_SERVICE", "pay/eu")):
                with self.subTest(name=name):
                    env = dict(os.environ, **{name: value})
                    result = subprocess.run([sys.executable, "-m", "tidemark", "run", script],
                                            capture_output=True, text=True, env=env, timeout=60)
                    self.assertEqual(result.returncode, 2)
                    self.assertEqual(result.stdout, "")
                    self.assertIn(name, result.stderr)
                    self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)

    def test_run_with_stdout_or_stderr_closed_runs_the_program(self):
        # `prog 2>&-`: sys.stderr is None in the runner, which must not stop on it.
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "prog.py")
            with open(script, "w") as f:
                f.write("import sys\nopen(sys.argv[1], 'w').write('ran')\nsys.exit(3)\n")
            env = dict(os.environ, TIDEMARK_ENDPOINT="tcp://127.0.0.1:9",
                       TIDEMARK_INTERVAL="0.05")
            for closed in ("1>&-", "2>&-", "1>&- 2>&-"):
                with self.subTest(closed=closed):
                    marker = os.path.join(tmp, "marker")
                    if os.path.exists(marker):
                        os.unlink(marker)
                    done = subprocess.run(
                        ["sh", "-c", 'exec "$0" -m tidemark run "$1" "$2" ' + closed,
                         sys.executable, script, marker], env=env, timeout=60)
                    self.assertEqual(done.returncode, 3)
                    with open(marker) as f:
                        self.assertEqual(f.read(), "ran")

    def test_run_help_prints_usage(self):
        result = subprocess.run([sys.executable, "-m", "tidemark", "run", "--help"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0)
        self.assertIn("usage: python -m tidemark run", result.stdout)


class Goodbye(unittest.TestCase):
    def test_stop_and_exit_say_goodbye_after_the_last_snapshot(self):
        with Collector() as collector:
            code = """
                import os, sys, tidemark
                tidemark.start(sys.argv[1], service="leaving", interval=0.02)
                while tidemark.status()["delivered"] < 3:
                    pass
                print(os.getpid())
            """  # Exits with the agent running: atexit stops it.
            result = run_python(code, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            pid = result.stdout.strip()
            byes = wait_for(lambda: [b for b in collector.goodbyes() if b[1] == pid],
                            what="the goodbye")
            seqs = [int(line[2]) for line in collector.received() if line[1] == pid]
            self.assertEqual(len(byes), 1)
            self.assertEqual(int(byes[0][2]), max(seqs) + 1, "the goodbye's seq follows")
            self.assertEqual(collector.bad(), [])

    def test_a_pause_for_fork_says_no_goodbye(self):
        with Collector() as collector:
            code = """
                import os, sys, tidemark
                tidemark.start(sys.argv[1], service="staying", interval=0.02)
                while tidemark.status()["delivered"] < 2:
                    pass
                for _ in range(5):
                    pid = os.fork()
                    if pid == 0:
                        os._exit(0)
                    os.waitpid(pid, 0)
                delivered = tidemark.status()["delivered"]
                while tidemark.status()["delivered"] < delivered + 2:
                    pass
                print(os.getpid(), len(sys.argv))
                sys.stdout.flush()
                os._exit(0)  # No atexit, no stop(): no goodbye.
            """
            result = run_python(code, args=[collector.endpoint])
            self.assertEqual(result.returncode, 0, result.stderr)
            pid = result.stdout.split()[0]
            self.assertEqual([b for b in collector.goodbyes() if b[1] == pid], [])


if __name__ == "__main__":
    unittest.main()
