"""bench/collector: tidemarkd's ingest throughput, CPU per snapshot and memory as the store grows.

    PYTHONPATH=build/python/py311 python3.11 bench/collector/bench_collector.py [--build build]
        [--rounds 3] [--summary-agents 200] [--summary-count 100] [--graph-agents 4]
        [--graph-count 15] [--store-dir DIR] [--markdown]

Makes one real summary and one real graph snapshot of the benchmark heap (shared/reference/
meliae.md, 160,000 Items, about 1M objects) with the agent, starts the real tidemarkd (store
on local disk, sync = "fsync", full validation), then for each round replays them with
replay_sender: many synthetic agents over loopback, each keeping a few snapshots in flight
and counting acknowledgements. Reports acknowledged snapshots/s and compressed MB/s per
kind, the daemon's CPU per snapshot (from /proc, the senders' CPU shown apart) and the
daemon's RSS after each round while the store grows.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def make_snapshots(workdir, items):
    code = ("import sys; sys.path.insert(0, %r); import bench_agent, tidemark; "
            "heap = bench_agent.build_heap(%d, False); "
            "tidemark.dump(sys.argv[1]); tidemark.dump(sys.argv[2], kind='graph')"
            % (os.path.join(ROOT, "bench", "agent"), items))
    summary = os.path.join(workdir, "summary.tdmk")
    graph = os.path.join(workdir, "graph.tdmk")
    subprocess.run([sys.executable, "-c", code, summary, graph], check=True)
    return summary, graph


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=160000)
    parser.add_argument("--summary-agents", type=int, default=200)
    parser.add_argument("--summary-count", type=int, default=100)
    parser.add_argument("--graph-agents", type=int, default=4)
    parser.add_argument("--graph-count", type=int, default=15)
    parser.add_argument("--store-dir")
    parser.add_argument("--graph-validation", choices=("decode", "frame"), default="decode")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bench-collector-", dir="/var/tmp")
    store = args.store_dir or os.path.join(workdir, "store")
    try:
        summary, graph = make_snapshots(workdir, args.items)
        port, http = free_port(), free_port()
        config = os.path.join(workdir, "tidemarkd.toml")
        with open(config, "w") as f:
            f.write('[collector]\nendpoint = "tcp://127.0.0.1:%d"\nreceive_hwm = 10000\n'
                    '[http]\nlisten = "127.0.0.1:%d"\n[store]\ndir = "%s"\n[log]\nlevel = "warn"\n'
                    '[limits]\ngraph_validation = "%s"\n'
                    % (port, http, store, args.graph_validation))
        daemon = subprocess.Popen([os.path.join(args.build, "collector", "tidemarkd"),
                                   "--config", config])
        endpoint = "tcp://127.0.0.1:%d" % port
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(store, "agents.log")):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("tidemarkd did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        sender = os.path.join(args.build, "bench", "replay_sender")
        rows = []
        for r in range(args.rounds):
            for kind, path, agents, count, window in (
                    ("summary", summary, args.summary_agents, args.summary_count, 4),
                    ("graph", graph, args.graph_agents, args.graph_count, 2)):
                cpu0 = proc_cpu_seconds(daemon.pid)
                out = subprocess.run([sender, "--endpoint", endpoint, "--file", path,
                                      "--agents", str(agents), "--count", str(count),
                                      "--window", str(window), "--pid-base",
                                      str((r + 1) * 1000000 + (0 if kind == "summary" else 500000)),
                                      "--timeout", "600"],
                                     check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                cpu = proc_cpu_seconds(daemon.pid) - cpu0
                acked = result["acked"]
                rows.append({
                    "round": r + 1, "kind": kind, "agents": agents, "acked": acked,
                    "sent": result["sent"], "seconds": result["seconds"],
                    "snapshots_per_s": acked / result["seconds"],
                    "mb_per_s": result["bytes_sent"] / result["seconds"] / 1e6,
                    "message_bytes": result["message_bytes"],
                    "daemon_cpu_us_per_snapshot": cpu / max(acked, 1) * 1e6,
                    "daemon_cpu_share": cpu / result["seconds"],
                    "sender_cpu_s": result["cpu_seconds"],
                    "daemon_rss_mb": proc_rss_bytes(daemon.pid) / 1e6,
                    "store_mb": dir_bytes(store) / 1e6,
                })
        daemon.terminate()
        daemon.wait(timeout=60)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.markdown:
        print("| round | kind | agents | acked | message | snapshots/s | MB/s | daemon CPU/snapshot "
              "| daemon CPU | sender CPU | daemon RSS | store |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for x in rows:
            print("| %d | %s | %d | %d | %.1f KB | %.0f | %.1f | %.0f µs | %.0f%% | %.1f s | %.1f MB "
                  "| %.0f MB |" % (x["round"], x["kind"], x["agents"], x["acked"],
                                   x["message_bytes"] / 1e3, x["snapshots_per_s"], x["mb_per_s"],
                                   x["daemon_cpu_us_per_snapshot"], 100 * x["daemon_cpu_share"],
                                   x["sender_cpu_s"], x["daemon_rss_mb"], x["store_mb"]))
    else:
        for x in rows:
            print(json.dumps(x))


if __name__ == "__main__":
    main()
