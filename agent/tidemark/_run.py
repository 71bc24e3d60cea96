"""`python -m tidemark run`: runs a program with the agent started, no code change needed.

The program is not run inside this process by runpy: this process checks the settings, then
replaces itself (exec, same pid) with `python [the same interpreter flags] PROGRAM ARGS`, with
the directory of tidemark's sitecustomize first on PYTHONPATH. So the program sees the
sys.path, __file__, sys.argv, tracebacks and exit status that `python PROGRAM ARGS` gives; the
sitecustomize starts the agent, takes its own directory off sys.path and then imports the
sitecustomize it shadows, if any. Child Python processes inherit PYTHONPATH and so report as
their own instances, once they have lived an interval.
"""

import os
import shutil
import subprocess
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
  TIDEMARK_WATCH      all (default), children (a forking master stops at its first fork)
                      or parent (children do not report)
  TIDEMARK_MAX_OVERHEAD  largest share of wall time snapshots may cost in CPU, the
                      agent's thread and snapshot children alike (default 1%): a snapshot
                      that cost c seconds of CPU makes the next wait at least c / share
A setting that is wrong stops here, before the program runs, with exit status 2.
Child Python processes (multiprocessing, prefork workers, subprocesses) report as their own
instances once they have lived about an interval.
"""

BOOT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_boot")


def _say(stream, text):
    """Writes to sys.stdout or sys.stderr, which are None when the descriptor was closed
    (`prog 2>&-`): then nothing is said, as `python prog.py 2>&-` would say nothing."""
    if stream is not None:
        stream.write(text)
        stream.flush()


def _fail(message):
    _say(sys.stderr, "python -m tidemark run: %s\n" % message)
    return 2


def _program(args):
    """(argv for the interpreter after its flags, service name), or raises ValueError."""
    if args[0] == "-m":
        if len(args) < 2:
            raise ValueError("-m: missing module name")
        return ["-m"] + args[1:], args[1]
    path = args[0]
    if not os.path.exists(path):
        found = shutil.which(path)  # A console script such as gunicorn.
        if found is None:
            raise ValueError("no such script or command: %s" % path)
        path = found
    service = os.path.splitext(os.path.basename(path))[0] or "python"
    return [path] + args[1:], service


def main(argv):
    if not argv or argv[0] in ("-h", "--help", "help"):
        _say(sys.stdout, USAGE)
        return 0 if argv else 2
    if argv[0] != "run":
        _say(sys.stderr, USAGE)
        return 2
    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):
        _say(sys.stdout, USAGE)
        return 0 if args else 2
    if sys.flags.ignore_environment or getattr(sys.flags, "isolated", 0):
        return _fail("the interpreter ignores the environment (-E or -I): the agent could not "
                     "reach the program")
    try:
        program, service = _program(args)
        import tidemark

        tidemark.check_environment()
    except ValueError as e:
        return _fail(str(e))
    env = os.environ
    env.setdefault("TIDEMARK_ENDPOINT", "tcp://127.0.0.1:7878")
    env.setdefault("TIDEMARK_SERVICE", tidemark._name_from(service))
    env["TIDEMARK_RUN_PID"] = str(os.getpid())  # The program itself starts at once.
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = BOOT_DIR + (os.pathsep + existing if existing else "")
    executable = sys.executable or "python3"
    argv = [executable] + subprocess._args_from_interpreter_flags() + program
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        os.execv(executable, argv)
    except OSError as e:
        return _fail("cannot run %s: %s" % (executable, e))
