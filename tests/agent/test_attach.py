"""tidemark attach, detach and dump on running processes of this interpreter (cli/injector.h,
cli/exchange.h): each kind of process keeps running unchanged (a sleep sleeps its whole time, a
recv still gets its data), its snapshots are stored by a real tidemarkd, and a dump holds exactly
what it holds; every step of the injection made to fail on purpose leaves the process as it was;
a process that never hands over the GIL is refused and nothing runs in it; a hostile process
cannot make the CLI (root) read, copy or delete anything of its choosing; and every refusal is
clear."""

import glob
import os
import re
import shutil
import stat
import socket
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import SANITIZED, Tidemarkd, wait_for  # noqa: E402

import tidemark  # noqa: E402

CLI = os.environ.get("TIDEMARK_CLI")
# The agent built for this interpreter (build/python/pyXY): the targets below cannot import
# tidemark themselves (no PYTHONPATH), so attach must add it for that import only.
AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(tidemark.__file__)))

# Every target holds 1234 Marker objects, says "ready", runs until told to end, then prints
# whether its sys.path is as it was and exits with status 7.
PROLOGUE = """
import os, socket, sys, threading, time
class Marker(object):
    pass
keep = [Marker() for _ in range(1234)]
START_PATH = list(sys.path)
STOP = sys.argv[1]
print("ready", flush=True)
"""
EPILOGUE = """
print("done", sys.path == START_PATH, flush=True)
sys.exit(7)
"""
TARGETS = {
    # Asleep in time.sleep most of the time (injected in clock_nanosleep, or select before
    # 3.11); every sleep must last its whole time (the interrupted call is restarted).
    "sleeping": """
while not os.path.exists(STOP):
    began = time.monotonic()
    time.sleep(0.3)
    if time.monotonic() - began < 0.3:
        print("a sleep was cut short", flush=True)
""",
    # A busy Python loop that looks for the stop file only now and then.
    "busy": """
x = 0
while True:
    for _ in range(200000):
        x = (x * 7 + 1) % 1000003
    if sum(i * 0.5 for i in range(1000)) != 249750.0:
        print("a float sum went wrong", flush=True)
    if os.path.exists(STOP):
        break
""",
    # Blocked in socket.recv until the test sends to it.
    "recv": """
conn = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
conn.recv(16)
""",
    # Several threads, sleeping and computing; the main thread joins them.
    "threads": """
def work(n):
    y = 0
    while not os.path.exists(STOP):
        if n % 2:
            time.sleep(0.05)
        else:
            y = sum(range(1000))
threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
""",
}


def assert_untouched(test, target):
    """Running (not stopped, not traced), with nothing of tidemark's loaded."""
    with open("/proc/%d/status" % target.pid) as f:
        status = dict(line.split(":", 1) for line in f)
    test.assertEqual(status["TracerPid"].strip(), "0")
    test.assertIn(status["State"].split()[0], ("R", "S"))
    with open("/proc/%d/maps" % target.pid) as f:
        test.assertNotIn("libtidemark_inject", f.read())
    test.assertIsNone(target.proc.poll())


def cli(*args, timeout=90, env=None):
    return subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env)


class Target(object):
    """A target process of this interpreter, without tidemark on its path; killed when the test
    ends if it still runs (a failed test leaves no process behind)."""

    def __init__(self, test, body, extra_args=(), python=(sys.executable,), extra_env=None):
        extra_env = extra_env or {}
        self.dir = tempfile.mkdtemp()
        os.chmod(self.dir, 0o777)
        self.stop_file = os.path.join(self.dir, "stop")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update(extra_env)
        self.proc = subprocess.Popen(
            list(python) + ["-c", textwrap.dedent(PROLOGUE + body + EPILOGUE), self.stop_file]
            + [str(a) for a in extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=self.dir)
        test.addCleanup(self.kill)
        assert self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)

    def end(self):
        open(self.stop_file, "w").close()
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


@unittest.skipIf(not CLI, "TIDEMARK_CLI is not set")
@unittest.skipIf(SANITIZED, "the targets would run with the sanitizers' runtimes preloaded; "
                            "the plain build tests attach on every interpreter")
class AttachToRunningProcesses(unittest.TestCase):
    def attach_dump_detach(self, kind, target, end=None):
        with Tidemarkd() as collector:
            service = "attached-%s" % kind
            done = cli("attach", target.pid, "--endpoint", collector.endpoint, "--service",
                       service, "--interval", "0.2", "--agent", AGENT_DIR)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn("agent started", done.stdout)
            wait_for(lambda: [s for s in collector.stored(service) if s[0] == target.pid],
                     timeout=60, what="a snapshot from the attached agent, stored")
            again = cli("attach", target.pid, "--endpoint", collector.endpoint,
                        "--agent", AGENT_DIR)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertIn("running already", again.stdout)

            path = os.path.join(target.dir, "dump.tdmk")
            dumped = cli("dump", target.pid, "-o", path, "--agent", AGENT_DIR, "--verbose")
            self.assertEqual(dumped.returncode, 0, dumped.stderr)
            snap = tidemark.load(path)
            counts = {name: count for name, count, _bytes, _largest in snap["types"]}
            self.assertEqual(counts["__main__.Marker"], 1234)
            exchanged = re.search(r"exchange directory (\S+)", dumped.stderr).group(1)
            self.assertFalse(os.path.exists(exchanged), exchanged)

            stopped = cli("detach", target.pid, "--agent", AGENT_DIR)
            self.assertEqual(stopped.returncode, 0, stopped.stderr)
            self.assertIn("agent stopped", stopped.stdout)
            wait_for(lambda: (collector.metrics() or {}).get("tidemark_agent_goodbyes_total", 0) >= 1,
                     timeout=30, what="the detached agent's goodbye at tidemarkd")
        if end is not None:
            end()
        status, out, err = target.end()
        self.assertEqual((status, out, err), (7, "done True\n", ""))

    def test_a_sleeping_process(self):
        self.attach_dump_detach("sleeping", Target(self, TARGETS["sleeping"]))

    def test_a_busy_python_loop(self):
        self.attach_dump_detach("busy", Target(self, TARGETS["busy"]))

    def test_a_process_blocked_in_recv(self):
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            target = Target(self, TARGETS["recv"], [server.getsockname()[1]])
            conn, _ = server.accept()
            with conn:
                self.attach_dump_detach("recv", target, end=lambda: conn.sendall(b"end"))

    def test_a_process_with_several_threads(self):
        self.attach_dump_detach("threads", Target(self, TARGETS["threads"]))


@unittest.skipIf(not CLI, "TIDEMARK_CLI is not set")
@unittest.skipIf(SANITIZED, "see AttachToRunningProcesses")
class Refusals(unittest.TestCase):
    def test_what_is_not_a_supported_python_is_refused_by_name(self):
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            done = cli("attach", sleeper.pid)
            self.assertEqual(done.returncode, 1)
            self.assertIn("is not Python", done.stderr)
        finally:
            sleeper.kill()
            sleeper.wait()
        self.assertIn("no process 999999999", cli("attach", "999999999").stderr)
        self.assertIn("not a process id: 'x'", cli("attach", "x").stderr)
        bad = cli("attach", "1", "--timeout", "soon")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--timeout: not a number of seconds (more than 0, at most 86400): 'soon'", bad.stderr)
        seam = cli("attach", "1", env=dict(os.environ, TIDEMARK_ATTACH_FAULT="nope"))
        self.assertEqual(seam.returncode, 2)
        self.assertIn("TIDEMARK_ATTACH_FAULT (a test seam): no step 'nope'; the steps: seize, stop,",
                      seam.stderr)
        old = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python3.7")))
        if old:
            proc = subprocess.Popen([old[0], "-c", "import time; time.sleep(60)"])
            try:
                done = cli("attach", proc.pid)
                self.assertIn("runs Python 3.7; tidemark supports 3.8 to 3.13", done.stderr)
            finally:
                proc.kill()
                proc.wait()

    def test_an_agent_directory_without_this_version_is_refused_before_injecting(self):
        target = Target(self, TARGETS["sleeping"])
        empty = tempfile.mkdtemp()
        done = cli("attach", target.pid, "--agent", empty)
        self.assertEqual(done.returncode, 1)
        self.assertIn("no agent for Python %d.%d in %s" % (sys.version_info[:2] + (empty,)),
                      done.stderr)
        self.assertEqual(target.end(), (7, "done True\n", ""))

    def test_another_users_process_is_refused_without_root(self):
        target = Target(self, TARGETS["sleeping"])
        if os.geteuid() == 0:
            other = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                    CLI, "attach", str(target.pid)],
                                   capture_output=True, text=True, timeout=60)
            self.assertEqual(other.returncode, 1)
            self.assertIn("permission denied: process %d belongs to uid 0" % target.pid,
                          other.stderr)
        self.assertEqual(target.end(), (7, "done True\n", ""))

    def test_a_process_that_never_reaches_a_safe_point_is_left_untouched(self):
        # Spins without allocating, waiting or calling anything: no safe point.
        spinner = Target(self, """
flag = 0
while flag == 0:
    pass
""")
        try:
            done = cli("attach", spinner.pid, "--agent", AGENT_DIR, "--timeout", "2")
            self.assertEqual(done.returncode, 1)
            self.assertIn("no safe point reached in the timeout", done.stderr)
            self.assertIn("The process was left as it was.", done.stderr)
            assert_untouched(self, spinner)
        finally:
            spinner.kill()


# The steps of cli/injector.h, each made to fail on purpose (TIDEMARK_ATTACH_FAULT) right
# after it was done: at a thread blocked in a system call, and at a hardware breakpoint.
STEPS_AT_A_SYSTEM_CALL = ["seize", "stop", "save-registers", "preflight", "write-arguments",
                          "dlopen", "dlsym"]
STEPS_AT_A_BREAKPOINT = ["arm-breakpoints", "breakpoint-hit", "save-registers", "preflight",
                         "write-arguments", "dlopen", "dlsym"]


@unittest.skipIf(not CLI, "TIDEMARK_CLI is not set")
@unittest.skipIf(SANITIZED, "see AttachToRunningProcesses")
class EveryStepFailing(unittest.TestCase):
    def fail_each(self, target, steps):
        for step in steps:
            done = cli("attach", target.pid, "--agent", AGENT_DIR, "--verbose",
                       env=dict(os.environ, TIDEMARK_ATTACH_FAULT=step))
            self.assertEqual(done.returncode, 1, (step, done.stderr))
            self.assertIn("%s: failed on purpose after this step" % step, done.stderr)
            self.assertIn("The process was left as it was.", done.stderr)
            assert_untouched(self, target)

    def test_a_long_sleep_sleeps_its_whole_time(self):
        target = Target(self, """
began = time.monotonic()
time.sleep(4)
print("slept", time.monotonic() - began >= 4, "tidemark" in sys.modules, flush=True)
""")
        self.fail_each(target, STEPS_AT_A_SYSTEM_CALL)
        self.assertEqual(target.end(), (7, "slept True False\ndone True\n", ""))

    def test_a_blocked_recv_still_gets_its_data(self):
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            target = Target(self, """
conn = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
print("got", conn.recv(16), flush=True)
""", [server.getsockname()[1]])
            conn, _ = server.accept()
            with conn:
                self.fail_each(target, STEPS_AT_A_SYSTEM_CALL)
                conn.sendall(b"data")
                self.assertEqual(target.end(), (7, "got b'data'\ndone True\n", ""))

    def test_a_busy_loop_computes_the_same(self):
        target = Target(self, TARGETS["busy"])
        self.fail_each(target, STEPS_AT_A_BREAKPOINT)
        self.assertEqual(target.end(), (7, "done True\n", ""))


@unittest.skipIf(not CLI, "TIDEMARK_CLI is not set")
@unittest.skipIf(SANITIZED, "see AttachToRunningProcesses")
class TheGilNeverHandedOver(unittest.TestCase):
    def test_it_is_refused_after_the_timeout_and_nothing_runs(self):
        # The main thread sleeps in a C call that keeps the GIL (ctypes.PyDLL does).
        target = Target(self, """
import ctypes
left = ctypes.PyDLL(None).sleep(6)
print("left", left, "tidemark" in sys.modules, flush=True)
""")
        path = os.path.join(target.dir, "dump.tdmk")
        done = cli("dump", target.pid, "-o", path, "--agent", AGENT_DIR, "--timeout", "2")
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("did not hand over the GIL within 2 s", done.stderr)
        self.assertIn("Nothing ran", done.stderr)
        self.assertFalse(os.path.exists(path))
        # The sleep is whole (0 seconds left), and the code never ran once the GIL came.
        self.assertEqual(target.end(), (7, "left 0 False\ndone True\n", ""))


SYSTEM_PYTHON = "/usr/bin/python3.11"


@unittest.skipIf(not CLI, "TIDEMARK_CLI is not set")
@unittest.skipIf(SANITIZED, "see AttachToRunningProcesses")
@unittest.skipUnless(os.geteuid() == 0 and os.path.exists(SYSTEM_PYTHON),
                     "needs root and Debian's python3.11 (a target run as nobody)")
class AHostileTarget(unittest.TestCase):
    """A target of another user whose `tidemark` does all it can to make root's CLI read, copy
    or delete a file of its choosing: it points its report at a root-only file and tries to
    link, replace and remove the files it was given."""

    HOSTILE = """
import glob, json, os
SECRET = %r
def snapshot(kind="summary", values=False):
    for d in glob.glob("/tmp/tidemark-attach-*"):
        for attempt in (lambda: os.symlink(SECRET, d + "/snapshot.tdmk.new"),
                        lambda: os.rename(d + "/snapshot.tdmk", d + "/gone"),
                        lambda: os.unlink(d + "/snapshot.tdmk"),
                        lambda: os.link(SECRET, d + "/linked")):
            try:
                attempt()
            except OSError:
                pass
    dumps = json.dumps
    json.dumps = lambda o, *a, **k: dumps(dict(o, file=SECRET, length=%d), *a, **k)
    class Snap(object):
        objects = 1
        bytes = 1
        encoded = b"hostile"
    return Snap()
"""

    def test_what_it_writes_cannot_steer_the_cli(self):
        private = tempfile.mkdtemp(dir="/root")
        self.addCleanup(shutil.rmtree, private)
        secret = os.path.join(private, "secret")
        with open(secret, "wb") as f:
            f.write(b"root's secret")
        os.chmod(secret, 0o600)
        shared = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, shared)
        os.chmod(shared, 0o755)
        os.mkdir(os.path.join(shared, "tidemark"))
        with open(os.path.join(shared, "tidemark", "__init__.py"), "w") as f:
            f.write(self.HOSTILE % (secret, len(b"root's secret")))
        library = os.path.join(shared, "libtidemark_inject.so")
        shutil.copy(os.environ.get("TIDEMARK_INJECT_LIB") or os.path.join(
            os.path.dirname(CLI), "..", "agent", "libtidemark_inject.so"), library)
        for path in glob.glob(shared + "/**", recursive=True):
            os.chmod(path, 0o755 if os.path.isdir(path) or path == library else 0o644)
        target = Target(self, TARGETS["sleeping"],
                        python=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                SYSTEM_PYTHON],
                        extra_env={"PYTHONPATH": shared})
        output = os.path.join(shared, "out.tdmk")
        done = cli("dump", target.pid, "-o", output,
                   env=dict(os.environ, TIDEMARK_INJECT_LIB=library))
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("the snapshot it wrote (7 bytes) is not the 13 bytes it reported",
                      done.stderr)
        with open(secret, "rb") as f:
            self.assertEqual(f.read(), b"root's secret")
        self.assertFalse(os.path.exists(output))
        self.assertEqual(sorted(os.listdir(private)), ["secret"])
        self.assertEqual(glob.glob("/tmp/tidemark-attach-*/linked"), [])
        self.assertEqual(target.end(), (7, "done True\n", ""))


if __name__ == "__main__":
    unittest.main()
