"""Agents sharded over three collectors, alerting through an Alertmanager cluster (issue 16):
three real tidemarkd, Debian's Prometheus scraping them with deploy/'s recording rules, two
Alertmanager peers gossiping on loopback, a webhook receiver behind them, and real Python
processes (one leaking, three steady) given all three collectors. The leaking agent's home is
killed -9 while the leak grows: the agents move within the failover time, no acknowledged
snapshot is lost, the leak reaches the receiver once, the service's series in Prometheus has
no gap longer than the failover (plus a scrape and a rule evaluation); the home restarts and
the agents return to it, with no false resolution or silence on the way.

Environment: as test_collector.py; prometheus and prometheus-alertmanager (scripts/test
installs them).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import urllib.parse
import urllib.request

from test_collector import Daemon, cli, free_port, wait_for
from test_pipeline import APP, FAST_RULE, RUNNER, External, Receiver

ROOT = os.environ.get("TIDEMARK_SOURCE_ROOT",
                      os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "tidemark-rules.yml")
FAILOVER_S = 3
HOME_RETRY_S = 5
SCRAPE_S = 1

# test_pipeline's fast rule, with a longer memory and a resolution slow enough to tell a
# handed-over alert from a resolved one.
COLLECTOR = FAST_RULE.replace('span = "12s"', 'span = "30s"').replace(
    'resolve_after = "2s"', 'resolve_after = "15s"') + """
[native]
enabled = false
window = "8s"
[investigate]
enabled = false
[silence]
intervals = 5
min_silence = "10s"
[[hooks]]
name = "am-a"
kind = "alertmanager"
url = "http://127.0.0.1:%(am_a)d"
resend_interval = "1s"
alert_ttl = "60s"
[[hooks]]
name = "am-b"
kind = "alertmanager"
url = "http://127.0.0.1:%(am_b)d"
resend_interval = "1s"
alert_ttl = "60s"
"""

ALERTMANAGER = """
route:
  receiver: on-call
  group_by: [alertname, service, tidemark_id]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: on-call
    webhook_configs:
      - url: "%s"
        send_resolved: true
"""


def notifications(receiver):
    """(status, alertname, service) of each alert in each notification Alertmanager sent."""
    return [(a["status"], a["labels"]["alertname"], a["labels"].get("service"))
            for doc in receiver.documents() for a in doc.get("alerts", [])]


class ShardedCollectors(unittest.TestCase):
    def setUp(self):
        for tool in ("prometheus", "prometheus-alertmanager"):
            if not shutil.which(tool):
                self.fail("%s is missing: scripts/test installs it" % tool)
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        self.workdir = tempfile.mkdtemp(prefix="ha-", dir=base)
        self.addCleanup(shutil.rmtree, self.workdir, True)
        with open(os.path.join(self.workdir, "leakyapp.py"), "w") as f:
            f.write(APP)

    def external(self, argv, port, ready):
        server = External(argv, port, ready)
        self.addCleanup(server.stop)
        return server

    def alertmanagers(self, receiver):
        config = os.path.join(self.workdir, "am.yml")
        with open(config, "w") as f:
            f.write(ALERTMANAGER % receiver.url)
        web, gossip = [free_port(), free_port()], [free_port(), free_port()]
        peers = []
        for i in (0, 1):
            store = os.path.join(self.workdir, "am-%d" % i)
            os.makedirs(store)
            peers.append(self.external(
                ["prometheus-alertmanager", "--config.file=" + config, "--storage.path=" + store,
                 "--web.listen-address=127.0.0.1:%d" % web[i],
                 "--cluster.listen-address=127.0.0.1:%d" % gossip[i],
                 "--cluster.peer=127.0.0.1:%d" % gossip[1 - i],
                 "--cluster.peer-timeout=2s", "--cluster.gossip-interval=100ms",
                 "--cluster.pushpull-interval=1s", "--cluster.settle-timeout=5s"],
                web[i], "/-/ready"))
        wait_for(lambda: all(len(p.get("/api/v2/status")["cluster"].get("peers") or []) == 2
                             for p in peers), 60, "the two Alertmanagers to form a cluster")
        return web

    def prometheus(self, daemons):
        directory = os.path.join(self.workdir, "prometheus")
        os.makedirs(directory)
        with open(RULES) as f:
            rules = f.read().replace("interval: 30s", "interval: %ds" % SCRAPE_S)
        with open(os.path.join(directory, "rules.yml"), "w") as f:
            f.write(rules)
        with open(os.path.join(directory, "prometheus.yml"), "w") as f:
            f.write(textwrap.dedent("""\
                global:
                  scrape_interval: %(s)ds
                  evaluation_interval: %(s)ds
                rule_files: [rules.yml]
                scrape_configs:
                  - job_name: tidemark
                    static_configs:
                      - targets: [%(targets)s]
                """) % {"s": SCRAPE_S, "targets": ", ".join(
                    '"127.0.0.1:%d"' % d.http_port for d in daemons)})
        port = free_port()
        return self.external(
            ["prometheus", "--config.file=" + os.path.join(directory, "prometheus.yml"),
             "--storage.tsdb.path=" + directory, "--web.listen-address=127.0.0.1:%d" % port],
            port, "/-/ready")

    def app(self, mode, endpoints):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [self.workdir, os.environ.get("PYTHONPATH", "")]),
            TIDEMARK_FAILOVER=str(FAILOVER_S), TIDEMARK_HOME_RETRY=str(HOME_RETRY_S),
            TIDEMARK_MAX_OVERHEAD="0")
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, mode, endpoints, "600"],
                                env=env, stdout=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc

    def test_a_collector_killed_mid_leak_loses_nothing_and_the_leak_is_told_once(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        am = self.alertmanagers(receiver)
        daemons = []
        for i in range(3):
            directory = os.path.join(self.workdir, "collector-%d" % i)
            os.makedirs(directory)
            daemons.append(Daemon(directory, COLLECTOR % {"am_a": am[0], "am_b": am[1]}).start())
            self.addCleanup(lambda d=daemons[-1]: d.proc.poll() is None and d.kill())
        prometheus = self.prometheus(daemons)
        endpoints = ",".join(d.endpoint for d in daemons)
        leaky = self.app("leaky", endpoints)
        steady = [self.app("warm", endpoints) for _ in range(3)]

        def has_leaky(d):
            return d.proc.poll() is None and (
                d.metric('tidemark_service_agents{service="leaky"}') or 0) >= 1

        wait_for(lambda: ("firing", "TidemarkLeak", "leaky") in notifications(receiver), 90,
                 "the leak at the receiver, through the Alertmanager cluster")
        home = wait_for(lambda: [d for d in daemons if has_leaky(d)], 30, "the leak's home")[0]
        others = [d for d in daemons if d is not home]

        home.kill()
        killed = time.time()
        stand_in = wait_for(lambda: [d for d in others if has_leaky(d)], 30,
                            "the leaking agent on another collector")[0]
        moved_after = time.time() - killed
        self.assertLess(moved_after, FAILOVER_S + 10)
        # The stand-in raises the leak again from what it receives: Alertmanager knows it.
        def raised():
            with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/alerts"
                                        % stand_in.http_port, timeout=10) as r:
                return [a for a in json.loads(r.read())["firing"] if a["kind"] == "leak"]
        try:
            wait_for(raised, 60, "the stand-in collector to raise the leak")
        except AssertionError:
            raise AssertionError("the stand-in did not raise the leak; it said:\n" +
                                 "\n".join(stand_in.log()[-30:]))

        home.start()  # Same ports, same store: the agents go home again.
        wait_for(lambda: has_leaky(home), HOME_RETRY_S + FAILOVER_S + 30,
                 "the leaking agent back home")
        wait_for(lambda: (stand_in.metric("tidemark_agents_moved_away_total") or 0) >= 1, 30,
                 "the stand-in told the agent moved")
        # Had the stand-in not been told the agent moved, it would call it silent after 10 s
        # and resolve the leak 15 s after it left (resolve_after): watch past both, with
        # Alertmanager grouping each 2 s.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(notifications(receiver)) == 1:
            time.sleep(0.2)
        self.assertEqual(notifications(receiver), [("firing", "TidemarkLeak", "leaky")],
                         receiver.documents())

        # The service's RSS in Prometheus, summed over collectors, around the kill.
        query = urllib.parse.urlencode({
            "query": 'service:tidemark_rss_bytes:sum{service="leaky"}',
            "start": killed - 10, "end": killed + moved_after + 10, "step": "0.5"})
        result = prometheus.get("/api/v1/query_range?" + query)["data"]["result"]
        self.assertEqual(len(result), 1, result)
        times = [float(t) for t, _ in result[0]["values"]]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # The failover, a scrape of the stand-in and a rule evaluation, and a second of slack.
        self.assertLessEqual(max(gaps), FAILOVER_S + 2 * SCRAPE_S + 2,
                             "the series stops for longer than the failover")
        print("\nagents moved %.1f s after the kill; longest gap in Prometheus %.1f s "
              "(failover %d s)" % (moved_after, max(gaps), FAILOVER_S), file=sys.stderr)

        # Nothing acknowledged is lost: every sequence number up to the last stored is stored
        # by one collector or another.
        for proc in [leaky] + steady:
            proc.terminate()
            proc.wait(timeout=60)
        seqs = set()
        for d in daemons:
            listed = json.loads(cli("ls", "--json", "--all", "--store", d.store).stdout)
            seqs |= {s["seq"] for svc in listed["services"] if svc["service"] == "leaky"
                     for a in svc["agents"] for s in a["snapshots"]}
        self.assertEqual(sorted(seqs), list(range(1, max(seqs) + 1)))


if __name__ == "__main__":
    unittest.main()
