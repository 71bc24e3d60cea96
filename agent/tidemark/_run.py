"""`python -m tidemark run`: runs a program with the agent started, no code change needed."""

import os
import runpy
import shutil
import sys

USAGE = """usage: python -m tidemark run [-m module | script | console-script] [args...]

Runs the program with the tidemark agent started from the environment:
  TIDEMARK_ENDPOINT   collector address (default tcp://127.0.0.1:7878)
  TIDEMARK_SERVICE    service name (default: the program's name)
  TIDEMARK_INTERVAL   seconds between snapshots, fractions allowed (default 60)
  TIDEMARK_GRAPH_EVERY every Nth snapshot is a graph snapshot (default 0: never)
  TIDEMARK_GRAPH_REQUEST_INTERVAL  least seconds between graphs a collector asks for (default 5)
  TIDEMARK_LABELS     labels such as env=prod,version=1.4
  TIDEMARK_SIGNAL     a signal that takes a snapshot now, e.g. USR1 (default: none)
Child Python processes (multiprocessing, prefork workers) report as their own instances.
"""


def _propagate_to_children():
    # Spawned Python children import sitecustomize from _boot, which starts their agent;
    # forked children restart it from the fork hooks.
    here = os.path.dirname(os.path.abspath(__file__))
    entries = [os.path.join(here, "_boot"), os.path.dirname(here)]
    existing = os.environ.get("PYTHONPATH")
    if existing:
        entries.append(existing)
    os.environ["PYTHONPATH"] = os.pathsep.join(entries)


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    if argv[0] != "run" or len(argv) < 2:
        sys.stderr.write(USAGE)
        return 2
    args = argv[1:]
    os.environ.setdefault("TIDEMARK_ENDPOINT", "tcp://127.0.0.1:7878")
    _propagate_to_children()
    import tidemark

    if args[0] == "-m":
        if len(args) < 2:
            sys.stderr.write("python -m tidemark run -m: missing module name\n")
            return 2
        sys.argv = [args[1]] + args[2:]
        os.environ.setdefault("TIDEMARK_SERVICE", args[1])
        tidemark.start_from_env()
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        return 0
    path = args[0]
    if not os.path.exists(path):
        found = shutil.which(path)  # A console script such as gunicorn.
        if found is None:
            sys.stderr.write("python -m tidemark run: no such script or command: %s\n" % path)
            return 2
        path = found
    sys.argv = [path] + args[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    os.environ.setdefault("TIDEMARK_SERVICE",
                          os.path.splitext(os.path.basename(path))[0] or "python")
    tidemark.start_from_env()
    runpy.run_path(path, run_name="__main__")
    return 0
