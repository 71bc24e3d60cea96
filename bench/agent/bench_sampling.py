"""What allocation sampling costs its host: allocation-heavy workloads with sampling off and
on (one run, rounds interleaved, so both see the same machine), and what a live sample costs.

    PYTHONPATH=build/python/py311 python3.11 bench/agent/bench_sampling.py [--rounds 15]

With --instructions, each (workload, setting) runs once under callgrind instead and the table
gives instructions executed (whole child, interpreter start included): a count that does not
vary with the machine's load, for paired comparisons on a noisy VM.

Each workload runs in its own child process per setting (sampling changes the allocator for
the whole process); each round runs every (workload, setting) once in shuffled order, and a
workload's figure is its median over rounds. Prints a Markdown table for RESULTS.md.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys

CHILD = r'''
import json, sys, time
import tidemark

mean = int(sys.argv[1])
name = sys.argv[2]
if mean:
    tidemark.start_sampling(mean_bytes=mean)

class Item(object):
    def __init__(self, i):
        self.i = i
        self.name = "item-%d" % i
        self.tags = [i, i + 1]

def churn():        # Objects made and dropped at once: the common case of a request.
    for i in range(300000):
        Item(i)

def json_round():   # Parse and serialize documents.
    doc = {"users": [{"id": i, "name": "u%d" % i, "roles": ["a", "b"]} for i in range(200)]}
    text = json.dumps(doc)
    for _ in range(300):
        json.dumps(json.loads(text))

def dicts():        # Build a dict of instances, then drop it.
    for _ in range(6):
        d = {}
        for i in range(60000):
            d["k%d" % i] = Item(i)
        del d

def formatting():   # A string-formatting loop.
    out = []
    for i in range(400000):
        out.append("%s:%d/%0.2f" % ("key", i, i / 3.0))
        if len(out) > 1000:
            del out[:]

work = {"churn": churn, "json": json_round, "dicts": dicts, "format": formatting}[name]
work()  # Warm up: caches, free lists, arenas.
start = time.perf_counter()
work()
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "sampling": tidemark.status()["sampling"]}))
'''

LIVE = r'''
import json, sys, tidemark
tidemark.start_sampling(mean_bytes=int(sys.argv[1]))
keep = [bytes(200) for _ in range(2000000)]  # 466 MB live: ~900 samples at 512 KiB.
print(json.dumps(tidemark.status()["sampling"]))
'''


def label(mean):
    # A mean of 1 TiB or more samples nothing: the cost of the hooks alone.
    return "hooks only" if mean >= 1 << 40 else "mean %d KiB" % (mean // 1024)


def instructions(code, *args):
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, "-c", code] + [str(a) for a in args],
                         capture_output=True, text=True, check=True)
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError("no instruction count from callgrind:\n" + out.stderr[-2000:])


def instruction_table(workloads, means):
    print("Python %s, instructions (callgrind, whole child; change against sampling off)\n"
          % sys.version.split()[0])
    print("| workload | off |" + "".join(" %s |" % label(m) for m in means if m))
    print("|---" * (1 + len(means)) + "|")
    for w in workloads:
        base = instructions(CHILD, 0, w)
        cells = ["%.0f M" % (base / 1e6)]
        for m in means:
            if m:
                n = instructions(CHILD, m, w)
                cells.append("%.0f M, %+.2f%%" % (n / 1e6, 100.0 * (n / float(base) - 1)))
        print("| %s | %s |" % (w, " | ".join(cells)))


def run(code, *args):
    out = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--means", default="0,%d,524288,65536" % (1 << 40),
                        help="mean bytes between samples; 0 is sampling off (the baseline), "
                             "2^40 the hooks with no sample")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead of timing")
    args = parser.parse_args()
    means = [int(m) for m in args.means.split(",")]
    workloads = ["churn", "json", "dicts", "format"]
    if args.instructions:
        instruction_table(workloads, means)
        return
    times = {(w, m): [] for w in workloads for m in means}
    samples = {}
    for _ in range(args.rounds):
        jobs = [(w, m) for w in workloads for m in means]
        random.shuffle(jobs)
        for w, m in jobs:
            result = run(CHILD, m, w)
            times[(w, m)].append(result["seconds"])
            samples[(w, m)] = result["sampling"]["samples_taken"]
    print("Python %s, %d rounds (median seconds; slowdown against sampling off)\n"
          % (sys.version.split()[0], args.rounds))
    header = "| workload | off |" + "".join(" %s (samples) |" % label(m) for m in means if m)
    print(header)
    print("|---" * (1 + len(means)) + "|")
    for w in workloads:
        base = statistics.median(times[(w, 0)])
        cells = ["%.3f s" % base]
        for m in means:
            if not m:
                continue
            t = statistics.median(times[(w, m)])
            cells.append("%.3f s, %+.1f%% (%d)" % (t, 100.0 * (t / base - 1), samples[(w, m)]))
        print("| %s | %s |" % (w, " | ".join(cells)))
    for m in means:
        if not m or m >= 1 << 40:
            continue
        s = run(LIVE, m)
        print("\nmean %d KiB, 2,000,000 live bytes(200): %d live samples, sample table %d bytes "
              "(%.0f B per live sample), %d stacks" % (
                  m // 1024, s["live_samples"], s["table_bytes"],
                  s["table_bytes"] / float(max(1, s["live_samples"])), s["stacks"]))


if __name__ == "__main__":
    main()
