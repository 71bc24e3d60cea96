"""What the agent's test files share: waiting on conditions, running code in a fresh
interpreter, and a real collector to send to."""

import os
import subprocess
import sys
import textwrap
import threading
import time

# Under AddressSanitizer freed memory is held in quarantine and everything runs slower.
SANITIZED = bool(os.environ.get("TIDEMARK_SANITIZED"))
SOURCE_ROOT = os.environ.get("TIDEMARK_SOURCE_ROOT",
                             os.path.join(os.path.dirname(__file__), "..", ".."))


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def run_python(code, timeout=60, env=None, args=()):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=full_env)


class Collector(object):
    """The ack_collector test binary: a real ZeroMQ ROUTER on a free loopback port that
    decodes every snapshot and acknowledges it. Its lines are read by a thread, so waiting
    for them times out instead of blocking."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([os.environ["TIDEMARK_ACK_COLLECTOR"]] + list(args),
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.endpoint = self.proc.stdout.readline().split()[1]
        self._lines = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line.split())

    def received(self):
        """[service, pid, seq, kind, objects, timestamp_ns, crossed, memory, limit, source] of
        every snapshot decoded so far (the last four: its memory figures, "0 0 0 -" without a
        limit)."""
        with self._lock:
            return [line[1:] for line in self._lines if line and line[0] == "ok"]

    def goodbyes(self):
        """[service, pid, seq, start_ns] of every goodbye so far."""
        with self._lock:
            return [line[1:] for line in self._lines if line and line[0] == "bye"]

    def bad(self):
        with self._lock:
            return [" ".join(line[1:]) for line in self._lines if line and line[0] == "bad"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        finally:
            self._reader.join(timeout=10)
            self.proc.stdout.close()
