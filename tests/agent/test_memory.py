"""The memory-limit watch: thresholds of a cgroup's limit (a fake tree of its files, both
versions of the interface) and of TIDEMARK_MEMORY_LIMIT against a process that really grows,
each crossing sending a graph snapshot ahead of the schedule to a real collector."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from helpers import SANITIZED, Collector, run_python, wait_for

# A received line: [service, pid, seq, kind, objects, ts, crossed, memory, limit, source].
CROSSED, MEMORY, LIMIT, SOURCE = 6, 7, 8, 9


def crossings(collector, service):
    """(kind, crossed percent) of the snapshots taken for a memory threshold, in order."""
    return [(line[3], int(line[CROSSED])) for line in collector.received()
            if line[0] == service and int(line[CROSSED]) > 0]


def grow_until_two_crossings(collector, service, code, *args):
    """Runs `code` (which grows until it crossed 90%, then waits for a line on stdin) against
    `collector`; returns (its crossings at the collector, returncode, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), collector.endpoint]
                            + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        got = wait_for(lambda: proc.poll() is not None or (
            crossings(collector, service) if len(crossings(collector, service)) >= 2 else None),
            timeout=90, what="two crossings at the collector")
        out, err = proc.communicate("done\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return got, proc.returncode, out, err


class FakeCgroupTree(unittest.TestCase):
    """TIDEMARK_CGROUP_DIR pointed at a directory the test writes, as the kernel would."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tidemark-cgroup-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        tmp = os.path.join(self.dir, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.dir, name))  # Never read half written.

    # The agent runs in a child interpreter; for each line "N" the test sends, it writes usage
    # N (in units of `scale`) to the file and answers "set"; the test waits on the collector.
    HOST = """
        import os, sys, time, tidemark
        endpoint, usage_file, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
        tidemark.start(endpoint=endpoint, service="cgroup", interval=3600, memory_check=0.02)
        for line in sys.stdin:
            tmp = usage_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\\n" % (int(line) * scale))
            os.rename(tmp, usage_file)
            print("set", flush=True)
        m = tidemark.status()["memory"]
        tidemark.stop()
        print(m["graphs"], m["summaries"], m["last_crossed"], m["source"], m["limit"])
    """

    def run_steps(self, usage_file, scale, steps):
        """Runs HOST through `steps`: (usage in percent, crossings the collector has by then)."""
        with Collector() as collector:
            env = dict(os.environ, TIDEMARK_CGROUP_DIR=self.dir)
            proc = subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(self.HOST), collector.endpoint,
                 os.path.join(self.dir, usage_file), str(scale)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=env)
            try:
                for usage, expected in steps:
                    proc.stdin.write("%d\n" % usage)
                    proc.stdin.flush()
                    self.assertEqual(proc.stdout.readline(), "set\n")
                    wait_for(lambda: len(crossings(collector, "cgroup")) >= expected,
                             what="%d crossings at the collector" % expected)
                    # Ten checks' worth: a crossing that should not be would show by then.
                    deadline = time.monotonic() + 0.2
                    while time.monotonic() < deadline:
                        self.assertEqual(len(crossings(collector, "cgroup")), expected,
                                         "at %d%%: %s" % (usage, crossings(collector, "cgroup")))
                        time.sleep(0.01)
                out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            self.assertEqual(proc.returncode, 0, err)
            return out.split(), crossings(collector, "cgroup"), collector.received()

    def test_cgroup_v2_thresholds_each_send_one_graph_until_memory_falls_back(self):
        self.write("memory.max", "%d\n" % (100 << 20))
        self.write("memory.current", "%d\n" % (50 << 20))
        self.write("memory.stat", "anon 1\ninactive_file 0\n")
        self.write("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
        status, got, received = self.run_steps(
            "memory.current", 1 << 20,
            [(50, 0), (81, 1), (85, 1), (79, 1), (91, 2), (99, 2), (60, 2), (82, 3)])
        self.assertEqual(got, [("graph", 80), ("graph", 90), ("graph", 80)])
        self.assertEqual(status, ["3", "0", "80", "cgroup2", str(100 << 20)])
        # Every snapshot, not only those, says where the process stands.
        first = received[0]
        self.assertEqual((first[LIMIT], first[SOURCE]), (str(100 << 20), "cgroup2"))

    def test_cgroup_v1_usage_less_inactive_file_is_what_crosses(self):
        self.write("memory.limit_in_bytes", "%d\n" % (200 << 20))
        self.write("memory.usage_in_bytes", "%d\n" % (100 << 20))
        self.write("memory.failcnt", "0\n")
        # 40 MiB of the usage is page cache the kernel would drop first.
        self.write("memory.stat", "total_inactive_file %d\n" % (40 << 20))
        # usage 190 -> working set 150 of 200: 75%, nothing; 210 -> 170 (85%): 80 crossed.
        status, got, _ = self.run_steps("memory.usage_in_bytes", 1 << 20,
                                        [(190, 0), (210, 1)])
        self.assertEqual(got, [("graph", 80)])
        self.assertEqual(status[3], "cgroup1")

    def test_a_bad_threshold_setting_is_refused_naming_the_variable(self):
        result = run_python("""
            import tidemark
            try:
                tidemark.start(endpoint="tcp://127.0.0.1:9", service="x")
            except ValueError as e:
                print(e)
        """, env={"TIDEMARK_MEMORY_THRESHOLDS": "80,abc"})
        self.assertIn("TIDEMARK_MEMORY_THRESHOLDS", result.stdout)
        result = run_python("""
            import tidemark
            try:
                tidemark.start(endpoint="tcp://127.0.0.1:9", service="x")
            except ValueError as e:
                print(e)
        """, env={"TIDEMARK_MEMORY_LIMIT": "lots"})
        self.assertIn("TIDEMARK_MEMORY_LIMIT", result.stdout)


class RealGrowth(unittest.TestCase):
    def test_a_process_growing_past_its_rss_limit_sends_graphs_at_80_and_90_percent(self):
        # The limit is set from the process's own size so that a sanitized or a lean build
        # crosses both thresholds by growing, not by starting above them.
        code = """
            import os, sys, time
            def rss():
                with open("/proc/self/statm") as f:
                    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            os.environ["TIDEMARK_MEMORY_LIMIT"] = str(rss() + (%d << 20))
            import tidemark
            tidemark.start(endpoint=sys.argv[1], service="balloon", interval=3600,
                           memory_check=0.02)
            limit = int(os.environ["TIDEMARK_MEMORY_LIMIT"])
            BALLAST = []
            deadline = time.monotonic() + 60
            while tidemark.status()["memory"]["last_crossed"] < 90:
                if time.monotonic() > deadline:
                    raise SystemExit("no crossing: %%r" %% (tidemark.status(),))
                if rss() < 0.97 * limit:
                    BALLAST.append(b"x" * (1 << 20))  # 1 MiB, written: resident.
                # ~100 MiB/s: several checks (every 20 ms) between 80 and 90 percent.
                time.sleep(0.01)
            sys.stdin.readline()  # The test saw both graphs arrive.
            m = tidemark.status()["memory"]
            tidemark.stop()
            print(m["graphs"], m["last_crossed"], m["source"], len(BALLAST))
        """ % (200 if SANITIZED else 100)
        with Collector() as collector:
            got, returncode, out, err = grow_until_two_crossings(collector, "balloon", code)
            self.assertEqual(returncode, 0, err + out)
            self.assertEqual(got, [("graph", 80), ("graph", 90)])
            graphs, last, source, ballast = out.split()
            self.assertEqual((graphs, last, source), ("2", "90", "rss"))
            for line in collector.received():
                if int(line[CROSSED]):
                    self.assertGreaterEqual(int(line[MEMORY]) * 100,
                                            int(line[CROSSED]) * int(line[LIMIT]), line)


class RealCgroup(unittest.TestCase):
    """A memory cgroup made for the test, with a limit the kernel enforces: the agent finds it
    from /proc/self/cgroup as in production. Skipped where cgroups cannot be made (no root, a
    v2 tree without the memory controller delegated)."""

    LIMIT = (1024 if SANITIZED else 256) << 20  # ASan keeps freed memory in quarantine.

    def make_cgroup(self):
        for base, limit_file in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
                                 ("/sys/fs/cgroup", "memory.max")):
            if not os.path.exists(os.path.join(base, limit_file if base.endswith("memory")
                                               else "cgroup.controllers")):
                continue
            path = os.path.join(base, "tidemark-test-%d" % os.getpid())
            try:
                os.mkdir(path)
            except OSError:
                continue
            self.addCleanup(os.rmdir, path)
            try:
                with open(os.path.join(path, limit_file), "w") as f:
                    f.write(str(self.LIMIT))
            except OSError:
                continue
            return path, "cgroup1" if limit_file == "memory.limit_in_bytes" else "cgroup2"
        self.skipTest("no memory cgroup can be made here")

    def test_a_process_in_a_real_cgroup_sends_graphs_at_80_and_90_percent_of_its_limit(self):
        path, version = self.make_cgroup()
        code = """
            import os, sys, time
            with open(os.path.join(sys.argv[2], "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))  # Joins before anything of the agent runs.
            import tidemark
            tidemark.start(endpoint=sys.argv[1], service="cgroup-real", interval=3600,
                           memory_check=0.02)
            BALLAST = []
            deadline = time.monotonic() + 60
            while tidemark.status()["memory"]["last_crossed"] < 90:
                if time.monotonic() > deadline:
                    raise SystemExit("no crossing: %r" % (tidemark.status(),))
                m = tidemark.status()["memory"]
                if not m["limit"] or m["current"] < 0.95 * m["limit"]:
                    BALLAST.append(b"x" * (1 << 20))
                time.sleep(0.01)
            sys.stdin.readline()
            m = tidemark.status()["memory"]
            tidemark.stop()
            print(m["graphs"], m["last_crossed"], m["source"], m["limit"])
        """
        with Collector() as collector:
            got, returncode, out, err = grow_until_two_crossings(collector, "cgroup-real",
                                                                 code, path)
            self.assertEqual(returncode, 0, err + out)
            self.assertEqual(got, [("graph", 80), ("graph", 90)])
            self.assertEqual(out.split(), ["2", "90", version, str(self.LIMIT)])


if __name__ == "__main__":
    unittest.main()
