"""What the agent costs a program that forks and starts children, against the same program
without it, in one run (ratios are what to compare; absolute times vary by machine).

    PYTHONPATH=build/python/py313 python3.13 bench/agent/bench_fork.py [--markdown]

- fork: os.fork() in the parent, measured from the call to the first Python call after it
  (which is where a restart scheduled on 3.12+ runs), the child exiting at once. The agent
  sends every 0.05 s to a real listening socket (ack_collector if TIDEMARK_ACK_COLLECTOR is
  set, else a port where nothing listens).
- child start: `python -c pass` started by subprocess, plain and as a child of a program run
  under `python -m tidemark run` (PYTHONPATH with tidemark's sitecustomize, the endpoint set):
  the agent is imported, and waits out its probation without opening anything.
- many children: 100 multiprocessing fork-context children, each alive 0.3 s, started one
  after the other and joined, with a summary every 0.05 s in every process.
"""

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time

import tidemark

RUN_BOOT = os.path.join(os.path.dirname(os.path.abspath(tidemark.__file__)), "_boot")


def closed_endpoint():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "tcp://127.0.0.1:%d" % port


def collector_endpoint():
    path = os.environ.get("TIDEMARK_ACK_COLLECTOR")
    if not path:
        return closed_endpoint(), None
    proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    endpoint = proc.stdout.readline().split()[1]
    return endpoint, proc


def noop():
    pass


def fork_times(n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        noop()  # A restart scheduled as a pending call runs here at the latest.
        times.append((time.perf_counter() - t0) * 1000)
        os.waitpid(pid, 0)
        time.sleep(0.01)
    return times


def child_start_times(n, env):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def live(seconds):
    time.sleep(seconds)


def many_children(n, seconds):
    ctx = multiprocessing.get_context("fork")
    t0 = time.perf_counter()
    procs = []
    for _ in range(n):
        p = ctx.Process(target=live, args=(seconds,))
        p.start()
        procs.append(p)
    for p in procs:
        p.join()
    return time.perf_counter() - t0


def median_p90(values):
    values = sorted(values)
    return statistics.median(values), values[int(len(values) * 0.9) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forks", type=int, default=200)
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    endpoint, collector = collector_endpoint()
    rows = []

    plain_fork = fork_times(args.forks)
    tidemark.start(endpoint, service="bench-fork", interval=0.05)
    time.sleep(0.3)
    agent_fork = fork_times(args.forks)
    status = tidemark.status()
    tidemark.stop()
    pm, pp = median_p90(plain_fork)
    am, ap = median_p90(agent_fork)
    rows.append(("os.fork() in the parent, ms (median / p90)", "%.2f / %.2f" % (pm, pp),
                 "%.2f / %.2f" % (am, ap), "+%.2f ms median" % (am - pm)))

    plain_env = dict(os.environ)
    agent_env = dict(os.environ, TIDEMARK_ENDPOINT=endpoint, TIDEMARK_INTERVAL="60",
                     PYTHONPATH=RUN_BOOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child_start_times(3, plain_env)  # Warm the page cache.
    plain_start = child_start_times(args.starts, plain_env)
    agent_start = child_start_times(args.starts, agent_env)
    pm, pp = median_p90(plain_start)
    am, ap = median_p90(agent_start)
    rows.append(("python -c pass as a child, ms (median / p90)", "%.1f / %.1f" % (pm, pp),
                 "%.1f / %.1f" % (am, ap), "x%.2f median" % (am / pm)))

    plain_many = many_children(args.children, 0.3)
    tidemark.start(endpoint, service="bench-many", interval=0.05)
    agent_many = many_children(args.children, 0.3)
    tidemark.stop()
    rows.append(("%d fork children alive 0.3 s, started and joined, s" % args.children,
                 "%.2f" % plain_many, "%.2f" % agent_many, "x%.2f" % (agent_many / plain_many)))

    if collector is not None:
        collector.stdin.close()
        collector.wait(timeout=10)
    version = sys.version.split()[0]
    if args.markdown:
        print("Python %s (parent delivered %d snapshots while forking)\n" % (
            version, status["delivered"]))
        print("| what | without the agent | with the agent | cost |")
        print("|---|---|---|---|")
        for row in rows:
            print("| %s |" % " | ".join(row))
    else:
        print("Python", version)
        for row in rows:
            print("  %-52s %-16s %-16s %s" % row)


if __name__ == "__main__":
    main()
