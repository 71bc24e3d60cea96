#!/usr/bin/env python3
"""Query API latency and the console's time to first chart, on a synthetic store.

make_store writes AGENTS agents x TYPES types x HOURS hours at one summary a minute (through
store::Store, as tidemarkd writes); a real tidemarkd serves it; each query is asked QUERIES
times in a row over HTTP (sequential: latency, not throughput) and its p50/p99 printed. The
console's time to first chart is read from the Performance API in headless Chromium
(performance.now() when the service page's first chart is drawn, from navigation start),
the median of 5 loads. Prints a markdown table for bench/console/RESULTS.md.

    python3 bench/console/bench_console.py --build build --agents 100 --types 500 --hours 24

Run with Debian's python3 (python3-selenium) for the browser figure; without selenium it is
skipped and said so.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def timed_get(url):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    return (time.perf_counter() - start) * 1000.0, body


def first_chart_ms(url, loads=5):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        times = []
        for _ in range(loads):
            browser.get("about:blank")
            browser.get(url)
            WebDriverWait(browser, 600).until(
                lambda b: b.execute_script("return window.tidemark && window.tidemark.firstChartMs()"))
            times.append(browser.execute_script("return window.tidemark.firstChartMs()"))
        return statistics.median(times)
    finally:
        browser.quit()


QUERIES = [
    ("services", "/api/v1/services"),
    ("agents of a service", "/api/v1/agents?service=service-1"),
    ("type table of a snapshot", "/api/v1/snapshot/types?ref=service-1%3Alast"),
    ("series, a service, 1 h", "/api/v1/series?service=service-1&from=-1h"),
    ("series, a service, 24 h", "/api/v1/series?service=service-1&from=-1d"),
    ("series, an agent, 1 h", "/api/v1/series?agent=service-1&from=-1h"),
    ("series, an agent, 24 h", "/api/v1/series?agent=service-1&from=-1d"),
]


class Daemon:
    """A tidemarkd on `store`, up and with its series rollups live."""

    def __init__(self, build, work, store, extra_http):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        config = os.path.join(work, "tidemarkd.toml")
        with open(config, "w") as f:
            f.write('[collector]\nendpoint = "tcp://127.0.0.1:%d"\n[http]\nlisten = "127.0.0.1:%d"\n'
                    '%s[store]\ndir = "%s"\n[retention.summary]\nmax_age = "30d"\n'
                    % (free_port(), self.port, extra_http, store))
        self.started = time.monotonic()
        self.proc = subprocess.Popen([os.path.join(build, "collector", "tidemarkd"), "--config",
                                      config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def metric(self, name):
        _, body = timed_get(self.base + "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def rss(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        deadline = time.monotonic() + 1200
        while True:
            try:
                if self.metric("tidemark_api_series_rollup_live") == 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("tidemarkd did not come up with its rollups")
            time.sleep(0.2)
        self.live_s = time.monotonic() - self.started
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--types", type=int, default=500)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--baseline-queries", type=int, default=3,
                        help="times each series query is asked of the files alone")
    parser.add_argument("--keep", help="write the store here and keep it")
    args = parser.parse_args()
    build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="bench-console-")
    store = args.keep or os.path.join(work, "store")
    try:
        if not os.path.exists(os.path.join(store, "agents.log")):
            started = time.monotonic()
            subprocess.run([os.path.join(build, "bench", "make_store"), store,
                            "--agents", str(args.agents), "--types", str(args.types),
                            "--hours", str(args.hours), "--services", str(args.services)],
                           check=True)
            print("store written in %.0f s" % (time.monotonic() - started), file=sys.stderr)
        scale = "%d agents x %d types x %g h, 1 summary/min (%d services)" % (
            args.agents, args.types, args.hours, args.services)
        print("| store | series from | query | p50 ms | p99 ms | answer bytes |")
        print("|---|---|---|---|---|---|")
        # The rollups (the default), then the files alone (rollups reaching back 1 s): the
        # baseline, in the same run.
        for label, extra in (("rollups", ""), ("files", 'series_span = "1s"\n')):
            with Daemon(build, work, store, extra) as daemon:
                print("%s: rollups live %.1f s after start, %.1f MiB of rollups, tidemarkd RSS %d MiB"
                      % (label, daemon.live_s, daemon.metric("tidemark_api_series_rollup_bytes")
                         / (1 << 20), daemon.rss() >> 20), file=sys.stderr)
                for name, path in QUERIES:
                    if label == "files" and "series" not in path:
                        continue
                    times = []
                    for _ in range(args.queries if label == "rollups" else args.baseline_queries):
                        ms, body = timed_get(daemon.base + path)
                        times.append(ms)
                    print("| %s | %s | %s | %.1f | %.1f | %d |" % (
                        scale, label, name, percentile(times, 50), percentile(times, 99),
                        len(body)), flush=True)
                if label == "rollups":
                    chart = first_chart_ms(daemon.base + "/#/service/service-1?range=24h")
                    print("| %s | %s | console: time to first chart (service page, 24 h) | %s | | |"
                          % (scale, label, "%.0f" % chart if chart is not None
                             else "not measured: no selenium"), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
