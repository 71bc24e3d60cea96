"""What the agent's test files share: waiting on conditions, running code in a fresh
interpreter, and a real collector to send to."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tidemarkd(object):
    """The real collector daemon (TIDEMARKD) on free loopback ports with a store in a temporary
    directory; what it stored is read with the CLI (TIDEMARK_CLI)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tidemarkd-")
        self.endpoint = "tcp://127.0.0.1:%d" % free_port()
        self.http_port = free_port()
        self.store = os.path.join(self.dir, "store")
        self.config = os.path.join(self.dir, "tidemarkd.toml")
        with open(self.config, "w") as f:
            f.write('[collector]\nendpoint = "%s"\n[http]\nlisten = "127.0.0.1:%d"\n'
                    '[store]\ndir = "%s"\n' % (self.endpoint, self.http_port, self.store))
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.restart()

    def restart(self):
        """Starts it (again: same ports, same store) and waits until it serves."""
        self.proc = subprocess.Popen([os.environ["TIDEMARKD"], "--config", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.metrics() is not None or self._exited(), 30, "tidemarkd to serve")

    def kill(self):
        """kill -9: nothing is flushed or said goodbye to."""
        self.proc.kill()
        self.proc.wait()

    def _exited(self):
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError("tidemarkd exited: " + self.log.read())
        return False

    def metrics(self):
        """{name: value} of /metrics, or None while it does not answer."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.http_port,
                                        timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stored(self, service):
        """[(pid, seq, kind)] of the service's stored snapshots (tidemark ls --json)."""
        result = subprocess.run([os.environ["TIDEMARK_CLI"], "ls", "--json", "--all", "--store",
                                 self.store], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            return []
        return [(a["pid"], s["seq"], s["kind"]) for svc in json.loads(result.stdout)["services"]
                if svc["service"] == service for a in svc["agents"] for s in a["snapshots"]]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
