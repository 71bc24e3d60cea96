"""A small service that leaks: every request appends a Session to a module-level cache that
is never trimmed. Used by scripts/demo and by the agent's tests.

    python demo_app.py [--requests-per-tick N] [--ticks N] [--tick-seconds S] [--dump-dir DIR]

With --dump-dir it writes a summary snapshot per tick (tidemark.dump) so that
`tidemark diff FIRST LAST` shows the growth.
"""

import argparse
import os
import time

import tidemark


class Session(object):
    def __init__(self, request_id):
        self.request_id = request_id
        self.user = "user-%d" % (request_id % 1000)
        self.payload = [request_id, request_id * 2, request_id * 3]


SESSIONS = {}  # The leak: keyed by request, never evicted.


def handle(request_id):
    SESSIONS[request_id] = Session(request_id)
    scratch = [str(i) for i in range(20)]  # Normal garbage, freed at once.
    return len(scratch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests-per-tick", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--tick-seconds", type=float, default=0.2)
    parser.add_argument("--dump-dir")
    args = parser.parse_args()
    request_id = 0
    for tick in range(args.ticks):
        for _ in range(args.requests_per_tick):
            request_id += 1
            handle(request_id)
        if args.dump_dir:
            path = os.path.join(args.dump_dir, "tick-%03d.tdmk" % tick)
            snap = tidemark.dump(path)
            print("tick %d: %d objects, %.1f MiB, pause %.1f ms -> %s" % (
                tick, snap.objects, snap.bytes / 1048576.0, snap.pause_ms, path), flush=True)
            del snap  # Its type table would show in the next tick's snapshot.
        time.sleep(args.tick_seconds)


if __name__ == "__main__":
    main()
