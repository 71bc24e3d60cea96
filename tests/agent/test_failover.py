"""An agent given several collectors (TIDEMARK_ENDPOINT=a,b): it picks its home by rendezvous
hashing, moves to the other when its home is killed -9, sends again what was not
acknowledged, loses nothing, and goes home again once its home is back, telling the other it
moved (run once per CPython
version by ctest, against two real tidemarkd)."""

import json
import os
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import Tidemarkd, wait_for  # noqa: E402

AGENT = textwrap.dedent("""
    import json, sys, threading, time, tidemark
    tidemark.start(sys.argv[1], service="fo", interval=0.1, max_overhead=0)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.wait(0.05):
        s = tidemark.status()
        print(json.dumps({k: s[k] for k in ("endpoint", "delivered", "sent", "dropped",
                                            "failovers", "resent")}), flush=True)
    tidemark.stop()
""")


class Failover(unittest.TestCase):
    def test_home_killed_the_agent_moves_loses_nothing_and_comes_home_again(self):
        with Tidemarkd() as a, Tidemarkd() as b:
            env = dict(os.environ, TIDEMARK_FAILOVER="1", TIDEMARK_HOME_RETRY="3")
            agent = subprocess.Popen([sys.executable, "-c", AGENT, a.endpoint + "," + b.endpoint],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
            self.addCleanup(agent.stdout.close)
            self.addCleanup(lambda: agent.poll() is None and (agent.kill(), agent.wait()))
            status = {}

            def seen(condition):
                line = agent.stdout.readline()
                if not line:
                    raise AssertionError("the agent exited")
                status.update(json.loads(line))
                return condition(status)

            wait_for(lambda: seen(lambda s: s["delivered"] >= 5), 30, "snapshots delivered")
            home = status["endpoint"]
            daemons = {a.endpoint: a, b.endpoint: b}
            away = b.endpoint if home == a.endpoint else a.endpoint
            daemons[home].kill()
            before = status["delivered"]
            wait_for(lambda: seen(lambda s: s["endpoint"] == away and s["delivered"] > before + 5),
                     30, "the agent on the other collector")
            daemons[home].restart()
            before = status["delivered"]
            wait_for(lambda: seen(lambda s: s["endpoint"] == home and s["delivered"] > before + 5),
                     30, "the agent home again")
            # Leaving the collector that stood in, the agent said it moved: forgotten there,
            # never called silent.
            wait_for(lambda: (daemons[away].metrics() or {}).get(
                "tidemark_agents_moved_away_total", 0) >= 1, 30, "the moved goodbye")
            agent.stdin.close()
            agent.wait(timeout=30)
            self.assertEqual(agent.returncode, 0)
            self.assertEqual(status["dropped"], 0)
            self.assertGreaterEqual(status["failovers"], 2)
            seqs = {seq for d in (a, b) for (_, seq, _) in d.stored("fo")}
            # Every snapshot up to the last stored reached one collector or the other.
            self.assertEqual(sorted(seqs), list(range(1, max(seqs) + 1)))


if __name__ == "__main__":
    unittest.main()
