"""tidemark attach, detach and dump on running processes of this interpreter (cli/attach.h):
each kind of process keeps running unchanged, its snapshots are stored by a real tidemarkd, and a dump
holds exactly what it holds; and every refusal is clear and leaves the process untouched."""

import glob
import os
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
    # Asleep in time.sleep most of the time (injected in clock_nanosleep).
    "sleeping": """
while not os.path.exists(STOP):
    time.sleep(0.2)
""",
    # A busy Python loop that looks for the stop file only now and then.
    "busy": """
x = 0
while True:
    for _ in range(200000):
        x = (x * 7 + 1) % 1000003
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


def cli(*args, timeout=90, env=None):
    return subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=env)


class Target(object):
    """A target process of this interpreter, without tidemark on its path; killed when the test
    ends if it still runs (a failed test leaves no process behind)."""

    def __init__(self, test, body, extra_args=()):
        self.dir = tempfile.mkdtemp()
        self.stop_file = os.path.join(self.dir, "stop")
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PROLOGUE + body + EPILOGUE), self.stop_file]
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
            dumped = cli("dump", target.pid, "-o", path, "--agent", AGENT_DIR)
            self.assertEqual(dumped.returncode, 0, dumped.stderr)
            snap = tidemark.load(path)
            counts = {name: count for name, count, _bytes, _largest in snap["types"]}
            self.assertEqual(counts["__main__.Marker"], 1234)
            self.assertEqual(glob.glob("/tmp/tidemark-attach-%d-*" % target.pid), [])

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
        self.assertIn("--timeout: not a positive number of seconds: 'soon'", bad.stderr)
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

    def test_no_debugger_or_no_permission_is_said_and_nothing_is_touched(self):
        target = Target(self, TARGETS["sleeping"])
        no_gdb = cli("attach", target.pid, "--agent", AGENT_DIR,
                     env=dict(os.environ, PATH="/nonexistent"))
        self.assertIn("no debugger: attaching uses gdb (apt-get install gdb)", no_gdb.stderr)
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
            self.assertIn("no safe point reached in 2 s", done.stderr)
            self.assertIn("left untouched", done.stderr)
            # Still running, not stopped or traced, and nothing of ours in it.
            with open("/proc/%d/status" % spinner.pid) as f:
                status = dict(line.split(":", 1) for line in f)
            self.assertEqual(status["TracerPid"].strip(), "0")
            self.assertIn(status["State"].split()[0], ("R", "S"))
            with open("/proc/%d/maps" % spinner.pid) as f:
                self.assertNotIn("libtidemark_inject", f.read())
            self.assertIsNone(spinner.proc.poll())
        finally:
            spinner.kill()


if __name__ == "__main__":
    unittest.main()
