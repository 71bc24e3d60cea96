"""Writes a graph snapshot of the benchmark heap (shared/reference/meliae.md) for bench_analysis.

    PYTHONPATH=build/python/py313 python3.13 bench/analysis/make_heap_snapshot.py OUT [--items 320000]

320,000 Items give about 2.05M objects (1.73M once instance dicts are folded into their owners).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
import bench_agent  # noqa: E402
import tidemark  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--items", type=int, default=320000)
    args = parser.parse_args()
    heap = bench_agent.build_heap(args.items, False)
    snap = tidemark.dump(args.out, kind="graph")
    print("%s: %d objects, %d bytes" % (args.out, snap.objects, os.path.getsize(args.out)))
    del heap


if __name__ == "__main__":
    main()
