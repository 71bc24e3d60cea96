"""What deploy/ ships (Prometheus rules and scrape config, the Alertmanager configuration, the
Grafana dashboard) is valid for the tools that read it, names only metrics a real tidemarkd
serves, and the recording rules give a service's totals in a real Prometheus scraping it.

Environment: as test_collector.py; Debian's prometheus and prometheus-alertmanager (promtool,
amtool), which the project's scripts install.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import urllib.parse

from test_collector import Daemon, free_port, wait_for
from test_pipeline import External

ROOT = os.environ.get("TIDEMARK_SOURCE_ROOT",
                      os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "tidemark-rules.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "tidemark-dashboard.json")

AGENT = """
import sys, time, tidemark
class Widget(object):
    pass
WIDGETS = [Widget() for _ in range(3000)]
tidemark.start(endpoint=sys.argv[1], service="deploytest", interval=0.2, max_overhead=0)
while True:
    time.sleep(1)
"""


def read(path):
    with open(path) as f:
        return f.read()


def dashboard_exprs():
    return [t["expr"] for p in json.loads(read(DASHBOARD))["panels"] for t in p["targets"]]


def recorded_names():
    return set(re.findall(r"^\s*- record:\s*(\S+)", read(RULES), re.M))


def metric_names(text):
    """The metric names a PromQL text refers to (tidemark's own and recording rules')."""
    return set(re.findall(r"\b(tidemark_[a-z_]+|[a-z_]+:[a-z_:]+[a-z0-9_]+)\b", text))


class DeployTest(unittest.TestCase):
    def tool(self, *argv):
        if not shutil.which(argv[0]):
            self.fail("%s is missing: scripts/test installs prometheus and "
                      "prometheus-alertmanager" % argv[0])
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_tools_accept_every_shipped_file(self):
        self.tool("promtool", "check", "rules", RULES)
        self.tool("promtool", "check", "config", os.path.join(DEPLOY, "prometheus",
                                                             "prometheus.yml"))
        self.tool("amtool", "check-config", os.path.join(DEPLOY, "alertmanager",
                                                         "alertmanager.yml"))

    def test_rules_and_dashboard_name_only_served_metrics_and_defined_rules_in_a_real_prometheus(self):
        base = os.environ.get("TIDEMARK_TMP") or tempfile.gettempdir()
        workdir = tempfile.mkdtemp(prefix="deploy-", dir=base)
        self.addCleanup(shutil.rmtree, workdir, True)
        daemon = Daemon(workdir, '[growth]\ndetect_interval = "250ms"\n'
                        '[[hooks]]\nname = "log"\nkind = "log"\n').start()  # Hook families.
        self.addCleanup(lambda: daemon.stop() if daemon.proc.poll() is None else None)
        agent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(AGENT), daemon.endpoint])
        self.addCleanup(lambda: (agent.kill(), agent.wait()))
        wait_for(lambda: daemon.metric('tidemark_service_agents{service="deploytest"}') >= 1,
                 60, "the agent's service in /metrics")

        served = {name.split("{")[0] for name in daemon.metrics()}
        alertnames = set(re.findall(r'alertname="(\w+)"', read(os.path.join(
            DEPLOY, "alertmanager", "alertmanager.yml"))))
        self.assertLessEqual(alertnames, {"TidemarkLeak", "TidemarkNativeMemoryGrowth",
                                          "TidemarkAgentSilent", "TidemarkMemoryPressure"})
        recorded = recorded_names()
        for where, text in [("rules", read(RULES))] + [("dashboard", e)
                                                        for e in dashboard_exprs()]:
            for name in metric_names(text):
                if name.startswith("tidemark_"):
                    # Counters are served as families; histograms are not used.
                    self.assertIn(name, served, "%s names %s, which tidemarkd does not serve"
                                  % (where, name))
                else:
                    self.assertIn(name, recorded, "%s names the undefined rule %s" % (where, name))

        # The shipped rules, evaluated each second instead of each 30 s, in a real Prometheus.
        prom_dir = os.path.join(workdir, "prometheus")
        os.makedirs(prom_dir)
        with open(os.path.join(prom_dir, "rules.yml"), "w") as f:
            f.write(read(RULES).replace("interval: 30s", "interval: 1s"))
        with open(os.path.join(prom_dir, "prometheus.yml"), "w") as f:
            f.write(textwrap.dedent("""\
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                rule_files: [rules.yml]
                scrape_configs:
                  - job_name: tidemark
                    static_configs:
                      - targets: ["127.0.0.1:%d"]
                """ % daemon.http_port))
        port = free_port()
        prometheus = External(
            ["prometheus", "--config.file=" + os.path.join(prom_dir, "prometheus.yml"),
             "--storage.tsdb.path=" + prom_dir, "--web.listen-address=127.0.0.1:%d" % port],
            port, "/-/ready")
        self.addCleanup(prometheus.stop)

        def value(query):
            result = prometheus.get("/api/v1/query?query=" + urllib.parse.quote(query))
            return float(result["data"]["result"][0]["value"][1]) if result["data"]["result"] \
                else None
        rss = wait_for(lambda: value('service:tidemark_rss_bytes:sum{service="deploytest"}'),
                       60, "the service's RSS recorded")
        self.assertGreater(rss, 0)
        widgets = wait_for(lambda: value('service_type:tidemark_type_bytes:sum'
                                         '{service="deploytest",type="__main__.Widget"}'),
                           60, "the Widget bytes recorded")
        self.assertGreater(widgets, 0)
        # Every dashboard query is one Prometheus accepts.
        for expr in dashboard_exprs():
            result = prometheus.get("/api/v1/query?query=" + urllib.parse.quote(
                expr.replace("$service", ".*")))
            self.assertEqual(result["status"], "success", expr)


if __name__ == "__main__":
    unittest.main()
