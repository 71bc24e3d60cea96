"""The diff pipeline end to end: real Python processes under the agent (one leaking a known type
at a known rate, one warming up to a plateau, one with a sawtooth), the real tidemarkd with short
windows, a local HTTP receiver for the webhook, a command hook, the real Alertmanager and
Prometheus from Debian when installed, and the tidemark CLI.

Environment: as test_collector.py.
"""
import http.server
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.request

from test_collector import Daemon, cli, free_port, wait_for

LEAK_PER_SECOND = 400  # leakyapp.Order objects leaked per second.

APP = r"""
import os, sys, time, tidemark

class Order(object):
    __slots__ = ("order_id", "lines")
    def __init__(self, order_id):
        self.order_id = order_id
        self.lines = None

class Record(object):
    __slots__ = ("record_id", "payload")
    def __init__(self, record_id, payload):
        self.record_id = record_id
        self.payload = payload

class Job(object):
    __slots__ = ("job_id",)
    def __init__(self, job_id):
        self.job_id = job_id

ORDERS = []   # leak: every order ever seen
JOBS = {}     # two: a second, independent leak beside ORDERS
RECORDS = []  # records: each Record holds a 200-byte payload, which grows fastest
CACHE = {}    # warm: fills to its bound, then stays
BATCH = []    # saw: fills, then is cleared
PAYLOAD = 40000  # balloon's bytes per Record (a name: a constant b"x" * 40000 is one object)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def main(mode, endpoint, seconds):
    if mode == "balloon":  # A limit 200 MiB above where it starts, which it grows towards.
        # At 90 percent 20 MiB are left: room for a graph walk (~64 bytes an object, twice).
        os.environ["TIDEMARK_MEMORY_LIMIT"] = str(rss() + (200 << 20))
    limit = int(os.environ.get("TIDEMARK_MEMORY_LIMIT", "0"))
    tidemark.start(endpoint=endpoint, service=mode, interval=0.2, labels={"team": "checkout"})
    start = time.monotonic()
    step = 0.05
    n = 0
    while time.monotonic() - start < seconds:
        tick = time.monotonic()
        if mode == "leaky":
            # Catch up with the clock: the rate holds even when a tick runs late (a slow,
            # loaded or sanitized build), so the rate the test expects is the one leaked.
            while n < int(%(rate)d * (tick - start)):
                n += 1
                ORDERS.append(Order(n))
        elif mode == "two":
            while n < int(%(rate)d * (tick - start)):
                n += 1
                ORDERS.append(Order(n))
                JOBS[n] = Job(n)
        elif mode == "records":
            while n < int(%(rate)d * (tick - start)):
                n += 1
                RECORDS.append(Record(n, bytes(200)))
        elif mode == "balloon":
            if rss() < 0.95 * limit:
                for _ in range(20):  # 800 KB a tick, 16 MB/s.
                    n += 1
                    RECORDS.append(Record(n, b"x" * PAYLOAD))
        elif mode == "warm":
            if len(CACHE) < 4000:
                for _ in range(100):
                    n += 1
                    CACHE[n] = Order(n)
        elif mode == "saw":
            for _ in range(50):
                n += 1
                BATCH.append(Order(n))
            if len(BATCH) >= 2000:
                del BATCH[:]
        time.sleep(max(0.0, step - (time.monotonic() - tick)))
    print("done", n, flush=True)
""" % {"rate": LEAK_PER_SECOND}

# Growth seen within seconds: what the leak tests configure.
FAST_RULE = """
        [growth]
        span = "12s"
        detect_interval = "250ms"
        [[rules]]
        name = "fast"
        window = "8s"
        for = "1s"
        min_rate = "5MiB/h"
        min_growth = "64KiB"
        resolve_after = "2s"
        cooldown = "1m"
"""

# Graphs asked a second apart, no native alerts: what the leak-diagnosis tests share.
INVESTIGATE_FAST = """
        [native]
        enabled = false
        window = "8s"
        [investigate]
        gap = "1s"
        min_interval = "1m"
        wait = "15s"
"""

RUNNER = "import sys, leakyapp; leakyapp.main(sys.argv[1], sys.argv[2], float(sys.argv[3]))"


class Receiver(object):
    """A local HTTP endpoint recording what is POSTed to it."""

    def __init__(self, tls=None):
        self.bodies = []
        self.headers = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.bodies.append((self.path, json.loads(body)))
                    receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d/hook" % (scheme, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def documents(self):
        with self.lock:
            return [b for _, b in self.bodies]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def alerts_in(documents, kind="alert"):
    return [d for d in documents if d.get("kind") == kind]


class External(object):
    """A Debian-packaged server (Prometheus, Alertmanager) on a free port, or None if missing."""

    def __init__(self, argv, port, ready_path):
        self.port = port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        url = "http://127.0.0.1:%d%s" % (port, ready_path)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited: %s" % (argv[0], self.proc.stderr.read()))
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(ready, 60, argv[0] + " to be ready")

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


class PipelineTest(unittest.TestCase):
    def setUp(self):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        self.workdir = tempfile.mkdtemp(prefix="pipeline-", dir=base)
        with open(os.path.join(self.workdir, "leakyapp.py"), "w") as f:
            f.write(APP)
        self.cleanup = []

    def tearDown(self):
        for action in reversed(self.cleanup):
            try:
                action()
            except Exception:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def app(self, mode, endpoint, seconds, env=None):
        env = dict(os.environ, **(env or {}))
        env["PYTHONPATH"] = self.workdir + os.pathsep + env.get("PYTHONPATH", "")
        env["TIDEMARK_GRAPH_REQUEST_INTERVAL"] = "0.5"
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, mode, endpoint, str(seconds)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            proc.stdout.close()
        self.cleanup.append(stop)
        return proc

    def daemon(self, extra):
        d = Daemon(self.workdir, extra)
        d.start()
        self.cleanup.append(lambda: d.kill() if d.proc.poll() is None else None)
        return d

    def investigating_daemon(self):
        """A tidemarkd with the fast rule, graphs asked a second apart, no native alerts, and a
        webhook receiver: what the leak-diagnosis tests share."""
        receiver = Receiver()
        self.cleanup.append(receiver.close)
        daemon = self.daemon(FAST_RULE + INVESTIGATE_FAST + """
        [[hooks]]
        name = "receiver"
        kind = "webhook"
        url = "%s"
        """ % receiver.url)
        return receiver, daemon

    def test_two_independent_leaks_in_one_process_are_two_alerts_each_naming_holder_and_site(self):
        receiver, daemon = self.investigating_daemon()
        # Sampling often enough that a few seconds of growth are sampled.
        self.app("two", daemon.endpoint, 120, env={"TIDEMARK_SAMPLE_BYTES": "2KiB"})

        expected = {"leak/fast/two", "leak/fast/two/leakyapp.JOBS"}

        def fired():
            return {d["alert"]["id"]: d["alert"] for d in alerts_in(receiver.documents())
                    if d["event"] == "firing" and d["alert"]["kind"] == "leak"}
        try:
            wait_for(lambda: expected <= set(fired()), 90, "two firing leak alerts")
        except AssertionError:
            raise AssertionError("fired: %s; tidemarkd said:\n%s" % (
                sorted(fired()), "\n".join(daemon.log())))
        # The ints both leaks refer to (order and job numbers) are held by what holds both:
        # they stay with the first alert rather than make a third.
        fired = fired()
        self.assertEqual(set(fired), expected)
        orders, jobs = fired["leak/fast/two"], fired["leak/fast/two/leakyapp.JOBS"]
        self.assertEqual(orders["type"], "leakyapp.Order")
        self.assertEqual(orders["holders"][0]["path"], "leakyapp.ORDERS", orders["note"])
        self.assertEqual(jobs["type"], "leakyapp.Job")
        self.assertEqual(jobs["holders"][0]["path"], "leakyapp.JOBS", jobs["note"])
        self.assertEqual(len(jobs["graphs"]), 2, jobs)
        self.assertNotIn("leakyapp.Job", [t["type"] for t in orders["top_growing"]])
        # Each names the line that allocated its objects.
        lines = APP.splitlines()
        order_line = lines.index("                ORDERS.append(Order(n))", lines.index(
            '        elif mode == "two":')) + 1
        job_line = lines.index("                JOBS[n] = Job(n)") + 1
        self.assertRegex(orders["site"], r"^\d+%% of the new leakyapp.Order bytes were allocated "
                         r"at .*leakyapp.py:%d in main \(called from " % order_line)
        self.assertRegex(jobs["site"], r"^\d+%% of the new leakyapp.Job bytes were allocated "
                         r"at .*leakyapp.py:%d in main \(called from " % job_line)
        self.assertIn(orders["site"], orders["summary"])
        self.assertEqual(daemon.stop(), 0)

    def test_a_leak_of_records_holding_payloads_is_headed_by_the_record_not_the_payload(self):
        receiver, daemon = self.investigating_daemon()
        self.app("records", daemon.endpoint, 120, env={"TIDEMARK_SAMPLE_BYTES": "2KiB"})

        def fired():
            return [d["alert"] for d in alerts_in(receiver.documents())
                    if d["event"] == "firing" and d["alert"]["kind"] == "leak"]
        try:
            wait_for(fired, 90, "a firing leak alert")
        except AssertionError:
            raise AssertionError("tidemarkd said:\n%s" % "\n".join(daemon.log()))
        alert = fired()[0]
        # The payload grows fastest, but the leak is the Records that hold it.
        self.assertEqual(alert["type"], "bytes", alert)
        self.assertEqual(alert["holders_type"], "leakyapp.Record", alert["note"])
        self.assertTrue(alert["summary"].startswith(
            "leakyapp.Record objects hold the growth: bytes grows"), alert["summary"])
        self.assertEqual(alert["holders"][0]["path"], "leakyapp.RECORDS", alert["note"])
        line = APP.splitlines().index("                RECORDS.append(Record(n, bytes(200)))") + 1
        self.assertRegex(alert["site"], r"^\d+%% of the new leakyapp.Record bytes were "
                         r"allocated at .*leakyapp.py:%d in main " % line)
        self.assertEqual(daemon.stop(), 0)

    def test_a_process_nearing_its_memory_limit_raises_one_alert_naming_its_largest_type_and_holder(self):
        receiver, daemon = self.investigating_daemon()
        self.app("balloon", daemon.endpoint, 120,
                 env={"TIDEMARK_MEMORY_CHECK": "0.1", "TIDEMARK_SAMPLE_BYTES": "64KiB"})

        def memory_alerts():
            return [(d["event"], d["alert"]) for d in alerts_in(receiver.documents())
                    if d["alert"]["kind"] == "memory-pressure"]
        try:
            wait_for(lambda: len(memory_alerts()) >= 2, 90, "memory alerts at 80 and 90 percent")
        except AssertionError:
            raise AssertionError("got: %s; tidemarkd said:\n%s" % (
                memory_alerts(), "\n".join(daemon.log())))
        (first_event, first), (second_event, second) = memory_alerts()[:2]
        self.assertEqual((first_event, second_event), ("firing", "updated"))
        self.assertEqual((first["memory"]["crossed"], second["memory"]["crossed"]), (80, 90))
        self.assertEqual(first["id"], second["id"])
        self.assertEqual(second["memory"]["source"], "rss")
        self.assertGreaterEqual(second["memory"]["current"] * 100, 90 * second["memory"]["limit"])
        # What fills the memory is the payloads, and what holds them is the list of Records.
        self.assertEqual(second["type"], "bytes", second)
        self.assertTrue(second["holders"], second)
        self.assertEqual(second["holders"][0]["path"], "leakyapp.RECORDS", second["note"])
        self.assertEqual(second["top_growing"][0]["type"], "bytes")
        line = APP.splitlines().index('                    RECORDS.append(Record(n, b"x" * PAYLOAD))')
        self.assertRegex(second["site"], r"^\d+%% of the live bytes bytes were allocated at "
                         r".*leakyapp.py:%d in main " % (line + 1))
        self.assertEqual(len(second["graphs"]), 1)
        self.assertIn("past 90% of its rss memory limit", second["summary"])
        # The store lists both graphs as taken for the limit.
        listed = json.loads(cli("ls", "--json", "--all", "--store", daemon.store).stdout)
        crossed = sorted(s["memory_crossed_pct"] for svc in listed["services"]
                         for a in svc["agents"] for s in a["snapshots"]
                         if s["memory_crossed_pct"])
        self.assertEqual(crossed, [80, 90])
        self.assertEqual(daemon.metric("tidemark_memory_pressure_alerts_total"), 2)
        self.assertEqual(daemon.stop(), 0)

    def test_leak_alert_names_type_rate_and_holder_while_plateau_and_sawtooth_stay_quiet(self):
        receiver = Receiver()
        self.cleanup.append(receiver.close)
        commands = os.path.join(self.workdir, "command-hook.jsonl")
        alertmanager = None
        if shutil.which("prometheus-alertmanager"):
            am_port = free_port()
            am_dir = os.path.join(self.workdir, "alertmanager")
            os.makedirs(am_dir)
            with open(os.path.join(am_dir, "am.yml"), "w") as f:
                f.write("route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n")
            alertmanager = External(
                ["prometheus-alertmanager", "--config.file=" + os.path.join(am_dir, "am.yml"),
                 "--storage.path=" + am_dir, "--web.listen-address=127.0.0.1:%d" % am_port,
                 "--cluster.listen-address="], am_port, "/-/ready")
            self.cleanup.append(alertmanager.stop)
        hooks = """
        [[hooks]]
        name = "receiver"
        kind = "webhook"
        url = "%s"
        [[hooks]]
        name = "script"
        kind = "command"
        command = ["sh", "-c", "cat >> %s"]
        """ % (receiver.url, commands)
        if alertmanager:
            hooks += """
        [[hooks]]
        name = "am"
        kind = "alertmanager"
        url = "http://127.0.0.1:%d"
        resend_interval = "1s"
        alert_ttl = "4s"
        """ % alertmanager.port
        daemon = self.daemon(FAST_RULE + """
        [native]
        window = "8s"
        [silence]
        intervals = 5
        min_silence = "3s"
        [investigate]
        gap = "1s"
        min_interval = "1m"
        wait = "15s"
        """ + hooks)
        prometheus = None
        if shutil.which("prometheus"):
            prom_port = free_port()
            prom_dir = os.path.join(self.workdir, "prometheus")
            os.makedirs(prom_dir)
            with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
                f.write(textwrap.dedent("""\
                    global:
                      scrape_interval: 1s
                    scrape_configs:
                      - job_name: tidemarkd
                        static_configs:
                          - targets: ["127.0.0.1:%d"]
                    """ % daemon.http_port))
            prometheus = External(
                ["prometheus", "--config.file=" + os.path.join(prom_dir, "prometheus.yml"),
                 "--storage.tsdb.path=" + prom_dir, "--web.listen-address=127.0.0.1:%d" % prom_port],
                prom_port, "/-/ready")
            self.cleanup.append(prometheus.stop)

        leaky = self.app("leaky", daemon.endpoint, 120)
        warm = self.app("warm", daemon.endpoint, 120)
        saw = self.app("saw", daemon.endpoint, 120)
        started = time.monotonic()

        def firing():
            return [d for d in alerts_in(receiver.documents()) if d["event"] == "firing"]
        try:
            wait_for(firing, 60, "a firing webhook")
        except AssertionError:
            raise AssertionError("no firing webhook; tidemarkd said:\n" + "\n".join(daemon.log()))
        fired_after = time.monotonic() - started
        alert = firing()[0]["alert"]
        self.assertEqual(alert["kind"], "leak")
        self.assertEqual(alert["service"], "leaky")
        self.assertEqual(alert["type"], "leakyapp.Order")
        self.assertEqual(alert["labels"], {"team": "checkout"})
        self.assertEqual(len(alert["agents"]), 1)
        self.assertLess(fired_after, 30, "the window is 8 s and `for` 1 s")
        # The rate: objects per hour within 20% of the truth, and bytes per hour to match.
        true_count_rate = LEAK_PER_SECOND * 3600.0
        self.assertAlmostEqual(alert["count_per_hour"] / true_count_rate, 1.0, delta=0.2, msg=alert)
        sys.stderr.write("\nleak alert fired %.1f s after the processes started; counted rate "
                         "%.3f of the true one\n" % (fired_after,
                                                     alert["count_per_hour"] / true_count_rate))
        per_object = alert["bytes_now"] / alert["count_now"]
        self.assertAlmostEqual(alert["bytes_per_hour"] / (true_count_rate * per_object), 1.0,
                               delta=0.2)
        # What holds it: the module-level list, by name.
        self.assertEqual(alert["holders_type"], "leakyapp.Order", alert["note"])
        self.assertTrue(alert["holders"], alert["note"])
        self.assertEqual(alert["holders"][0]["path"], "leakyapp.ORDERS")
        self.assertIn("leakyapp.ORDERS", alert["summary"])
        # The evidence: the two stored graph snapshots, and commands that open them.
        self.assertEqual(len(alert["graphs"]), 2, alert)
        self.assertEqual(len(alert["evidence"]), 2, alert)
        self.assertTrue(alert["evidence"][0].startswith("tidemark gdiff "), alert["evidence"])
        for command in alert["evidence"]:
            opened = cli(*(command.split()[1:] + ["--store", daemon.store]))
            self.assertEqual(opened.returncode, 0, command + ": " + opened.stderr)
            self.assertIn("leakyapp.ORDERS", opened.stdout, command)

        # The plateau and the sawtooth have had their window and `for` by now: give them a few
        # passes more, then nothing may have fired or be pending for them.
        time.sleep(3)  # A fixed observation period: the claim is that nothing happens in it.
        with urllib.request.urlopen("http://127.0.0.1:%d/alerts" % daemon.http_port) as r:
            active = json.loads(r.read())
        # (Leak alerts only: under AddressSanitizer every process's RSS grows with the
        # sanitizer's quarantine, which the native-memory rule rightly sees as native growth.)
        services = {a["service"] for a in active if a["kind"] == "leak"}
        self.assertNotIn("warm", services, active)
        self.assertNotIn("saw", services, active)
        self.assertEqual([d for d in alerts_in(receiver.documents())
                          if d["alert"]["service"] != "leaky" or d["alert"]["kind"] != "leak"], [])
        metrics = daemon.metrics()
        self.assertGreater(metrics['tidemark_type_bytes{service="leaky",type="leakyapp.Order"}'], 0)
        self.assertGreater(metrics['tidemark_type_growth_bytes_per_hour{service="leaky",type="leakyapp.Order"}'], 0)
        self.assertEqual(metrics['tidemark_alert{kind="leak",rule="fast",service="leaky",type="leakyapp.Order",state="firing"}'], 1)
        self.assertGreaterEqual(metrics["tidemark_graph_diffs_total"], 1)
        self.assertEqual(metrics['tidemark_hook_delivered_total{hook="receiver",kind="webhook"}'], 1)

        # The command hook got the same document on stdin.
        def command_output():
            if not os.path.exists(commands):
                return ""
            with open(commands) as f:
                return f.read().strip()
        wait_for(command_output, 20, "the command hook")
        with open(commands) as f:
            by_command = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(by_command[0]["alert"]["id"], alert["id"])

        if alertmanager:
            def in_alertmanager():
                return [a for a in alertmanager.get("/api/v2/alerts")
                        if a["labels"].get("alertname") == "TidemarkLeak"]
            try:
                received = wait_for(in_alertmanager, 30, "the alert in Alertmanager")[0]
            except AssertionError:
                raise AssertionError("not in Alertmanager (%s); tidemarkd said:\n%s\n%s" % (
                    alertmanager.get("/api/v2/alerts"),
                    "\n".join(l for l in daemon.log() if "hook" in l),
                    {k: v for k, v in daemon.metrics().items() if "hook" in k}))
            self.assertEqual(received["labels"]["service"], "leaky")
            self.assertEqual(received["labels"]["type"], "leakyapp.Order")
            self.assertEqual(received["labels"]["team"], "checkout")
            self.assertEqual(received["annotations"]["held_by"], "leakyapp.ORDERS")
            self.assertIn("tidemark why ", received["annotations"]["evidence"])
            # Posted again each second, valid 4 s each time: it stays active past its first
            # endsAt instead of lapsing as an alert sent once would.
            first_end = received["endsAt"]
            wait_for(lambda: [a for a in in_alertmanager() if a["endsAt"] > first_end and
                              a["status"]["state"] == "active" and
                              a["startsAt"] == received["startsAt"]], 20,
                     "the alert posted again with a later endsAt")
            self.assertEqual(len(in_alertmanager()), 1)

        if prometheus:
            query = ('/api/v1/query?query=tidemark_type_bytes%7Bservice%3D%22leaky%22%2C'
                     'type%3D%22leakyapp.Order%22%7D')
            result = wait_for(lambda: prometheus.get(query)["data"]["result"], 60,
                              "Prometheus to have scraped the per-type gauge")
            self.assertGreater(float(result[0]["value"][1]), 0)
            firing_query = "/api/v1/query?query=tidemark_alerts%7Bstate%3D%22firing%22%7D"
            self.assertGreaterEqual(
                float(wait_for(lambda: prometheus.get(firing_query)["data"]["result"], 30,
                               "tidemark_alerts in Prometheus")[0]["value"][1]), 1)

        # The leaking process dies: it goes silent, the leak alert resolves, a silent alert fires.
        leaky.kill()
        resolved = wait_for(lambda: [d for d in alerts_in(receiver.documents())
                                     if d["event"] == "resolved" and d["alert"]["kind"] == "leak"],
                            30, "the resolved webhook")
        self.assertEqual(resolved[0]["alert"]["id"], alert["id"])
        wait_for(lambda: [d for d in alerts_in(receiver.documents())
                          if d["event"] == "firing" and d["alert"]["kind"] == "silent"], 30,
                 "the silent-agent webhook")
        warm.kill()
        saw.kill()

        # Stored: `tidemark alerts` lists it with its holder, and so after a restart.
        shown = cli("alerts", "--store", daemon.store, "--all", "--json")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        listed = json.loads(shown.stdout)
        self.assertIn(alert["id"], [a["id"] for a in listed["resolved"]])
        daemon.stop()
        daemon.start()
        # The rolling state comes back from the store's series, the firing alerts from the
        # journal (the silent one is still firing).
        daemon.wait_for_log("growth: ")
        rebuilt = [l for l in daemon.log() if "growth: " in l][0]
        restored, folded = re.search(r"growth: (\d+) alerts restored, (\d+) summaries", rebuilt).groups()
        self.assertGreaterEqual(int(restored), 1, rebuilt)
        self.assertGreater(int(folded), 0, rebuilt)
        wait_for(lambda: daemon.metric("tidemark_growth_series") > 0, 20,
                 "the first detector pass over the rebuilt state")
        text = cli("alerts", "--store", daemon.store, "--all")
        self.assertIn("held by leakyapp.ORDERS", text.stdout)
        self.assertIn("evidence: tidemark gdiff " + " ".join(alert["graphs"]), text.stdout)
        growth = cli("growth", "--store", daemon.store, "--service", "leaky", "--window", "1h", "--json")
        self.assertEqual(growth.returncode, 0, growth.stderr)
        rows = json.loads(growth.stdout)[0]["types"]
        self.assertEqual(rows[0]["type"], "leakyapp.Order")

    def test_an_agent_that_stops_says_goodbye_and_is_never_silent_even_after_a_restart(self):
        receiver = Receiver()
        self.cleanup.append(receiver.close)
        config = """
        [growth]
        detect_interval = "200ms"
        [silence]
        intervals = 2
        min_silence = "1s"
        [[hooks]]
        name = "web"
        kind = "webhook"
        url = "%s"
        """ % receiver.url
        daemon = self.daemon(config)
        stopping = self.app("warm", daemon.endpoint, 2)  # Exits by itself: atexit says goodbye.
        killed = self.app("saw", daemon.endpoint, 60)
        wait_for(lambda: daemon.metric('tidemark_snapshots_received_total{kind="summary"}') >= 6,
                 30, "summaries from both")
        self.assertEqual(stopping.wait(timeout=30), 0)
        wait_for(lambda: daemon.metric("tidemark_agent_goodbyes_total") == 1, 30, "the goodbye")
        killed.kill()

        def silent():
            return [d["alert"]["service"] for d in alerts_in(receiver.documents())
                    if d["event"] == "firing" and d["alert"]["kind"] == "silent"]
        wait_for(lambda: silent(), 30, "the killed agent's silent alert")
        # Long past the silence threshold of the agent that stopped.
        wait_for(lambda: daemon.metric("tidemark_detector_passes_total") >= 15, 30, "passes")
        self.assertEqual(silent(), ["saw"])

        # Recorded in the store: the rebuilt state forgets it too.
        daemon.stop()
        daemon.start()
        daemon.wait_for_log("growth: ")
        passes = daemon.metric("tidemark_detector_passes_total")
        wait_for(lambda: daemon.metric("tidemark_detector_passes_total") >= passes + 15, 30,
                 "passes after the restart")
        self.assertNotIn("warm", silent())

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command for a certificate")
    def test_https_webhook_verifies_the_server_certificate(self):
        cert = os.path.join(self.workdir, "cert.pem")
        key = os.path.join(self.workdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        receiver = Receiver(tls=(cert, key))
        self.cleanup.append(receiver.close)
        # A silent agent is the quickest alert: one agent sends, then dies.
        daemon = self.daemon("""
        [growth]
        detect_interval = "200ms"
        [silence]
        intervals = 2
        min_silence = "1s"
        [[hooks]]
        name = "trusted"
        kind = "webhook"
        url = "%s"
        ca_file = "%s"
        [[hooks]]
        name = "untrusted"
        kind = "webhook"
        url = "%s"
        max_attempts = 2
        backoff = "100ms"
        """ % (receiver.url, cert, receiver.url))
        app = self.app("warm", daemon.endpoint, 60)
        wait_for(lambda: daemon.metric('tidemark_snapshots_received_total{kind="summary"}') >= 3,
                 30, "summaries")
        app.kill()
        got = wait_for(lambda: [d for d in alerts_in(receiver.documents())
                                if d["alert"]["kind"] == "silent"], 30, "the alert over HTTPS")
        self.assertEqual(got[0]["alert"]["service"], "warm")
        self.assertEqual(got[0]["event"], "firing")
        # Without the CA the self-signed server is refused: retried, then given up.
        wait_for(lambda: daemon.metric('tidemark_hook_given_up_total{hook="untrusted",kind="webhook"}') == 1,
                 30, "the untrusted hook to give up")
        self.assertEqual(daemon.metric('tidemark_hook_failed_attempts_total{hook="untrusted",kind="webhook"}'), 2)
        wait_for(lambda: daemon.metric('tidemark_hook_delivered_total{hook="trusted",kind="webhook"}') == 1,
                 30, "the trusted hook's delivery to be counted")
        self.assertTrue([l for l in daemon.log() if "hook untrusted" in l and "certificate" in l],
                        "\n".join(daemon.log()))

    def test_scheduled_report_is_stored_listed_and_sent_to_its_hooks(self):
        receiver = Receiver()
        self.cleanup.append(receiver.close)
        daemon = self.daemon("""
        [[hooks]]
        name = "reports-only"
        kind = "webhook"
        url = "%s"
        alerts = false
        headers = { Authorization = "Bearer s3cret", X-Tidemark-Test = "reports" }
        [[schedules]]
        name = "often"
        every = "3s"
        compare_with = "2s"
        hooks = ["reports-only"]
        """ % receiver.url)
        leaky = self.app("leaky", daemon.endpoint, 60)
        report = wait_for(lambda: alerts_in(receiver.documents(), "report"), 40, "a report")[0]
        self.assertEqual(report["event"], "report")
        self.assertEqual(receiver.headers[0]["Authorization"], "Bearer s3cret")
        self.assertEqual(receiver.headers[0]["X-Tidemark-Test"], "reports")
        sections = report["report"]["sections"]
        service = [s for s in sections if s["scope"] == "service" and s["name"] == "leaky"]
        self.assertTrue(service, sections)
        self.assertEqual(service[0]["rows"][0]["type"], "leakyapp.Order")
        self.assertGreater(service[0]["rows"][0]["count_delta"], 0)
        leaky.kill()
        listed = cli("reports", "--store", daemon.store, "--json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        ids = [r["id"] for r in json.loads(listed.stdout)]
        self.assertIn(report["report"]["id"], ids)
        shown = cli("reports", report["report"]["id"], "--store", daemon.store)
        self.assertIn("leakyapp.Order", shown.stdout)
        self.assertEqual([d for d in receiver.documents() if d.get("kind") == "alert"], [],
                         "this hook takes reports only")


if __name__ == "__main__":
    unittest.main()
