"""What the agent costs a real web service: Flask under gunicorn (2 sync workers, a preloaded
heap of ~430,000 objects per worker, web_app.py), loaded by ApacheBench over loopback, with
and without the agent, in one run.

    scripts/bench-web                       # builds the agent for Debian's python3, runs this
    python3 bench/agent/bench_web.py --pythonpath BUILD/python/py311 \\
        --collector BUILD/tests/agent/ack_collector [--rounds 3] [--seconds 10] [--markdown]

Cases (each run --rounds times, in a rotated order per round; "vs off" is the median over rounds
of the case's requests/s against "off" in the same round, other columns medians):
  off          gunicorn as it is
  summary 1s   python -m tidemark run gunicorn ..., a summary snapshot asked every second, the
               defaults otherwise: the overhead budget (TIDEMARK_MAX_OVERHEAD=1%) stretches the
               interval to 100 times what a snapshot cost in CPU (the agent's thread and its
               snapshot child), allocation sampling off
  summary 1s, no budget   the same with TIDEMARK_MAX_OVERHEAD=0: a walk every second
  graph 5s     every fifth snapshot a graph, within the budget
  no collector summaries to a port where nothing listens, within the budget
  sampling 512KiB  "summary 1s" with allocation sampling on (TIDEMARK_SAMPLE_BYTES=512KiB)
  idle agent   TIDEMARK_INTERVAL=3600: the workers' agents are still in their probation (half to
               all of an interval) during the case, so nothing of the agent runs in them but its
               loaded module and a sleeping thread
  off again    "off" once more: how far two identical cases differ on this machine
The agent cases run with TIDEMARK_WATCH=children (the arbiter, which serves nothing, is not
walked; its two workers report). "snapshots received" counts what reached the collector
during the case.
Columns: requests/s and its change against "off"; the workers' CPU time (user + system, with
that of the snapshot children they reaped, from /proc) per request served and its change against "off" (less sensitive than throughput to the
VM's own noise); p50 and p99 latency (ab's percentiles, ms); the workers' resident memory after
the load (MB, mean of the two).
Needs Debian's gunicorn, python3-flask and apache2-utils.
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ALL_CASES = ["off", "summary 1s", "summary 1s, no budget", "graph 5s", "no collector",
             "sampling 512KiB", "idle agent", "off again"]
PYTHON = "/usr/bin/python3"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until_serving(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited: %s" % proc.stdout.read())
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not serve within %d s" % timeout)


def workers(master_pid):
    return subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True,
                          text=True).stdout.split()


def cpu_seconds(pids):
    """User plus system CPU of the processes and of their children they reaped (the agent's
    snapshot children), in seconds (clock ticks of /proc/PID/stat)."""
    ticks = 0
    for pid in pids:
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        except OSError:
            pass
    return ticks / float(os.sysconf("SC_CLK_TCK"))


def worker_rss_mb(master_pid):
    children = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True,
                              text=True).stdout.split()
    sizes = []
    for pid in children:
        try:
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024.0)
        except OSError:
            pass
    return statistics.mean(sizes) if sizes else 0.0


def run_case(case, args, endpoint):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + args.pythonpath,
               PYTHONDONTWRITEBYTECODE="1")
    gunicorn = ["/usr/bin/gunicorn", "-w", "2", "-b", "127.0.0.1:%d" % port, "--preload",
                "--log-level", "warning", "web_app:app"]
    if case in ("off", "off again"):
        argv = [PYTHON] + gunicorn
    else:
        argv = [PYTHON, "-m", "tidemark", "run"] + gunicorn
        env["TIDEMARK_ENDPOINT"] = endpoint if case != "no collector" else "tcp://127.0.0.1:%d" % free_port()
        env["TIDEMARK_INTERVAL"] = "3600" if case == "idle agent" else "1"
        env["TIDEMARK_SERVICE"] = "bench-web"
        env["TIDEMARK_WATCH"] = args.watch
        if case == "graph 5s":
            env["TIDEMARK_GRAPH_EVERY"] = "5"
        if case.endswith("no budget"):
            env["TIDEMARK_MAX_OVERHEAD"] = "0"
        if case == "sampling 512KiB":
            env["TIDEMARK_SAMPLE_BYTES"] = "512KiB"
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=HERE)
    try:
        wait_until_serving(port, proc)
        time.sleep(1.5)  # The workers' agents are past their probation.
        pids = workers(proc.pid)
        cpu_before = cpu_seconds(pids)
        ab = subprocess.run(["ab", "-q", "-k", "-c", "4", "-t", str(args.seconds), "-n", "10000000",
                             "http://127.0.0.1:%d/" % port], capture_output=True, text=True)
        cpu = cpu_seconds(pids) - cpu_before
        rss = worker_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", ab.stdout).group(1))
    done = int(re.search(r"Complete requests:\s+(\d+)", ab.stdout).group(1))
    pct = dict((int(p), float(ms)) for p, ms in re.findall(r"^\s+(\d+)%\s+(\d+)", ab.stdout, re.M))
    return {"rps": rps, "p50": pct.get(50, 0), "p99": pct.get(99, 0), "rss": rss,
            "cpu_us": cpu / max(done, 1) * 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythonpath", required=True,
                        help="where the agent built for /usr/bin/python3 is (BUILD/python/py311)")
    parser.add_argument("--collector", required=True, help="the ack_collector test binary")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--watch", default="children",
                        help="TIDEMARK_WATCH for the agent cases (default: %(default)s: the "
                             "arbiter, which serves nothing, is not walked)")
    parser.add_argument("--cases", help="comma-separated cases besides off (default: all)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    collector = subprocess.Popen([args.collector], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
    endpoint = collector.stdout.readline().split()[1]
    received = []  # Every line the collector prints, read as it comes (a full pipe stalls it).
    threading.Thread(target=lambda: received.extend(collector.stdout), daemon=True).start()
    cases = ["off"] + [c for c in ALL_CASES[1:] if not args.cases or c in args.cases.split(",")]
    results = {c: [] for c in cases}
    run_case("off", args, endpoint)  # Warm-up.
    for round_number in range(args.rounds):
        # Throughput drifts on a shared VM: each round runs the cases in another order, and
        # each case is compared with "off" of its own round.
        shift = round_number % len(cases)
        for case in cases[shift:] + cases[:shift]:
            before = len(received)
            result = run_case(case, args, endpoint)
            result["snapshots"] = sum(1 for line in received[before:] if line.startswith("ok "))
            results[case].append(result)
    collector.stdin.close()
    collector.wait(timeout=10)

    def med(case, key):
        return statistics.median(r[key] for r in results[case])

    def ratio(case, key):
        return statistics.median(r[key] / o[key] for r, o in zip(results[case], results["off"]))

    version = subprocess.run([PYTHON, "--version"], capture_output=True, text=True).stdout.strip()
    lines = ["%s, gunicorn 2 sync workers, ab -k -c 4 for %d s, %d rounds, "
             "TIDEMARK_WATCH=%s" % (version, args.seconds, args.rounds, args.watch), "",
        "| case | requests/s | vs off | worker CPU µs/request | vs off | p50 ms | p99 ms "
        "| worker RSS MB | snapshots received |",
        "|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        lines.append("| %s | %.0f | %+.1f%% | %.0f | %+.1f%% | %.0f | %.0f | %.0f | %.0f |" % (
            case, med(case, "rps"), (ratio(case, "rps") - 1) * 100, med(case, "cpu_us"),
            (ratio(case, "cpu_us") - 1) * 100, med(case, "p50"), med(case, "p99"),
            med(case, "rss"), med(case, "snapshots")))
    print("\n".join(lines) if args.markdown else "\n".join(lines).replace("|", " "))


if __name__ == "__main__":
    sys.exit(main())
