"""bench/collector: a fleet over three collectors, for docs/scaling.md's sizing.

    python3 bench/collector/bench_fleet.py [--build build] [--interval 10] [--duration 150]
        [--types 200] [--scenarios baseline,fleet,rate,capped] [--markdown]

Three real tidemarkd on loopback (store on local disk, sync = "fsync", a webhook hook to a
receiver here) and, per collector, one replay_sender in paced mode (--interval): synthetic
agents each sending one summary of --types types every --interval seconds, their phases spread
evenly, a few of them leaking (their first type grows 64 MiB/h from the start; services
fleet-0..3, so each collector raises four leak alerts). A scenario runs --duration seconds on
fresh collectors:

  baseline  30 agents (10 per collector), one connection each: the same work with no load;
  fleet     10,000 agents, one connection each (3,334 descriptors per collector);
  rate      one collector's share of 100,000 agents over three: 33,334 agents (3,333
            summaries/s) on 1,000 connections (the collector keys agents by the identity in each
            snapshot, so this is the load of those agents at their rate, less the descriptors),
            growth.max_memory = 4GiB. One collector, not three: three at that rate need more
            than this machine's two cores (tried: they fell behind, 650 acknowledged/s);
  capped    the same under the default growth.max_memory (1 GiB): what the cap does to a
            collector given more agents than it can follow.

Reported per scenario, summed or averaged over its collectors: summaries acknowledged per
second, daemon CPU per acknowledged summary (everything the daemon did: ingest, store, folding,
detector passes, hooks, /metrics) and the system-call share of it, daemon RSS and RSS per agent
(RSS at the end minus RSS before the first agent, over the agents), the growth state's
accounted bytes per agent (tidemark_growth_memory_bytes), agents evicted from the growth state,
the slowest detector pass, detection latency (from the leak's start to its alert at the
webhook receiver, first and last of the four alerts per collector; the rule needs 70 s of
growth, see RULES) and the alert fan-out (alerts received of those expected). Store bytes per
agent-day are extrapolated from the store's size and the summaries in it.
"""

import argparse
import http.server
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bench_collector import dir_bytes, free_port, proc_rss_bytes  # noqa: E402

LEAKS_PER_COLLECTOR = 4
# The leak rule: 64 MiB/h is 1.07 MiB a minute; a 60 s window and 10 s of "for" after it.
RULES = """
[growth]
span = "3m"
detect_interval = "5s"
max_memory = "%(max_memory)s"
[[rules]]
name = "fleet"
window = "60s"
for = "10s"
min_rate = "16MiB/h"
min_growth = "256KiB"
[native]
enabled = false
window = "60s"
[investigate]
enabled = false
[silence]
min_silence = "1h"
"""

SCENARIOS = {
    # name: (collectors, agents, connections per collector or 0 for one per agent,
    #        growth.max_memory)
    "baseline": (3, 30, 0, "1GiB"),
    "fleet": (3, 10000, 0, "1GiB"),
    "rate": (1, 33334, 1000, "4GiB"),
    "capped": (1, 33334, 1000, "1GiB"),
}


class Receiver(object):
    """A webhook receiver: the arrival time of each firing alert, by service and collector."""

    def __init__(self):
        self.firing = []  # (monotonic time, service, collector port)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body.get("event") == "firing":
                    with receiver.lock:
                        receiver.firing.append((time.monotonic(), body["alert"]["service"],
                                                self.path.strip("/")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def proc_cpu(pid):
    """(user, system) CPU seconds of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def raise_descriptor_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Collector(object):
    def __init__(self, build, workdir, receiver, max_memory):
        self.port, self.http = free_port(), free_port()
        self.store = os.path.join(workdir, "store-%d" % self.port)
        config = os.path.join(workdir, "tidemarkd-%d.toml" % self.port)
        with open(config, "w") as f:
            f.write('[collector]\nendpoint = "tcp://127.0.0.1:%d"\nreceive_hwm = 10000\n'
                    '[http]\nlisten = "127.0.0.1:%d"\n[store]\ndir = "%s"\n[log]\nlevel = "error"\n'
                    % (self.port, self.http, self.store))
            f.write(RULES % {"max_memory": max_memory})
            f.write('[[hooks]]\nname = "receiver"\nkind = "webhook"\nurl = "%s/%d"\n'
                    % (receiver.url, self.port))
        self.proc = subprocess.Popen([os.path.join(build, "collector", "tidemarkd"),
                                      "--config", config], preexec_fn=raise_descriptor_limit)
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        deadline = time.monotonic() + 30
        while True:
            try:
                self.metrics()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("tidemarkd did not start")
                time.sleep(0.1)

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.http, timeout=30) as r:
            values = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#") and "{" not in line:
                    name, value = line.rsplit(" ", 1)
                    values[name] = float(value)
            return values

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=120)


def run_scenario(args, name, workdir):
    count, agents, connections, max_memory = SCENARIOS[name]
    receiver = Receiver()
    collectors = [Collector(args.build, workdir, receiver, max_memory) for _ in range(count)]
    try:
        rss0 = [proc_rss_bytes(c.proc.pid) for c in collectors]
        cpu0 = [proc_cpu(c.proc.pid) for c in collectors]
        per = -(-agents // count)
        senders = []
        started = time.monotonic()
        for i, c in enumerate(collectors):
            argv = [os.path.join(args.build, "bench", "replay_sender"), "--endpoint", c.endpoint,
                    "--service", "fleet", "--agents", str(per), "--types", str(args.types),
                    "--interval", str(args.interval), "--duration", str(args.duration),
                    "--pid-base", str(1000000 * (i + 1)), "--leak-agents",
                    str(LEAKS_PER_COLLECTOR)]
            if connections:
                argv += ["--connections", str(connections)]
            senders.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                            preexec_fn=raise_descriptor_limit))
        slowest_pass = 0.0
        while any(s.poll() is None for s in senders):
            time.sleep(2)
            for c in collectors:
                slowest_pass = max(slowest_pass,
                                   c.metrics().get("tidemark_detector_pass_seconds", 0))
        sent = [json.loads(s.stdout.read().strip().splitlines()[-1]) for s in senders]
        seconds = max(s["seconds"] for s in sent)
        cpu1 = [proc_cpu(c.proc.pid) for c in collectors]
        user = sum(c1[0] - c0[0] for c1, c0 in zip(cpu1, cpu0))
        cpu = user + sum(c1[1] - c0[1] for c1, c0 in zip(cpu1, cpu0))
        rss = sum(proc_rss_bytes(c.proc.pid) - r0 for c, r0 in zip(collectors, rss0))
        metrics = [c.metrics() for c in collectors]
        acked = sum(s["acked"] for s in sent)
        with receiver.lock:
            firing = list(receiver.firing)
        latencies = sorted(t - started for t, _, _ in firing)
        store = sum(dir_bytes(c.store) for c in collectors)
        row = {
            "scenario": name, "collectors": count, "agents": per * count,
            "connections": (connections or per) * count,
            "seconds": seconds, "sent": sum(s["sent"] for s in sent), "acked": acked,
            "skipped": sum(s["skipped"] for s in sent),
            "behind_ms": max(s["behind_ms"] for s in sent),
            "acked_per_s": acked / seconds,
            "cpu_us_per_summary": cpu / max(acked, 1) * 1e6,
            "daemon_cpu_share": cpu / seconds,
            "daemon_system_share": (cpu - user) / max(cpu, 1e-9),
            "sender_cpu_s": sum(s["cpu_seconds"] for s in sent),
            "rss_per_agent_kb": rss / (per * count) / 1024,
            "rss_mb": sum(proc_rss_bytes(c.proc.pid) for c in collectors) / count / 1e6,
            "growth_per_agent_kb": sum(m.get("tidemark_growth_memory_bytes", 0)
                                       for m in metrics) / (per * count) / 1024,
            "evicted": sum(m.get("tidemark_growth_agents_evicted_total", 0) for m in metrics),
            "followed": sum(m.get("tidemark_growth_series", 0) for m in metrics) / args.types,
            "refused": sum(m.get("tidemark_growth_summaries_refused_total", 0) for m in metrics),
            "slowest_pass_s": slowest_pass,
            "alerts": len(firing), "alerts_expected": count * LEAKS_PER_COLLECTOR,
            "first_alert_s": latencies[0] if latencies else None,
            "last_alert_s": latencies[-1] if latencies else None,
            "store_bytes_per_summary": store / max(acked, 1),
        }
        row["store_mb_per_agent_day"] = (row["store_bytes_per_summary"] * 86400 / args.interval
                                         / 1e6)
        return row
    finally:
        for c in collectors:
            if c.proc.poll() is None:
                c.stop()
        receiver.close()


COLUMNS = ("scenario", "collectors", "agents", "connections", "acked/s", "skipped", "send lag",
           "daemon CPU/summary", "daemon CPU (system share)", "daemon RSS", "RSS/agent",
           "growth state/agent", "followed", "refused summaries", "evicted",
           "slowest detector pass", "alerts", "detection (first-last)", "store/agent-day")


def markdown(rows):
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for r in rows:
        detection = ("%.0f-%.0f s" % (r["first_alert_s"], r["last_alert_s"])
                     if r["first_alert_s"] is not None else "none")
        cells = (r["scenario"], r["collectors"], r["agents"], r["connections"],
                 "%.0f" % r["acked_per_s"], r["skipped"], "%.0f ms" % r["behind_ms"],
                 "%.0f µs" % r["cpu_us_per_summary"],
                 "%.0f%% (%.0f%%)" % (100 * r["daemon_cpu_share"], 100 * r["daemon_system_share"]),
                 "%.0f MB" % r["rss_mb"], "%.1f KB" % r["rss_per_agent_kb"],
                 "%.1f KB" % r["growth_per_agent_kb"], "%d" % r["followed"],
                 "%d" % r["refused"], "%d" % r["evicted"],
                 "%.2f s" % r["slowest_pass_s"], "%d/%d" % (r["alerts"], r["alerts_expected"]),
                 detection, "%.1f MB" % r["store_mb_per_agent_day"])
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--duration", type=float, default=150)
    parser.add_argument("--types", type=int, default=200)
    parser.add_argument("--scenarios", default="baseline,fleet,rate,capped")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.scenarios.split(","):
        workdir = tempfile.mkdtemp(prefix="bench-fleet-", dir="/var/tmp")
        try:
            rows.append(run_scenario(args, name, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if not args.markdown:
            print(json.dumps(rows[-1]), flush=True)
    if args.markdown:
        markdown(rows)


if __name__ == "__main__":
    main()
