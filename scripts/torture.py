#!/usr/bin/env python3
"""Runs CPython's own regression tests with and without the tidemark agent and reports every
test module whose result differs: the agent must not change what a program does.

    scripts/torture                      # the default modules, every interpreter built
    scripts/torture --modules test_os,test_signal --python /path/to/python3.12
    scripts/torture.py --build build --python PY ...   (what scripts/torture runs)

With the agent, each module runs as `python -m tidemark run -m test -v MODULE` with a summary
snapshot every TIDEMARK_INTERVAL (0.1 s by default, so 0.05-0.2 s once jittered children are
counted), sent to a port where nothing listens (--collector PORT sends to a collector there
instead). Without it, as `python -m test -v MODULE`. A module differs when its exit status or
its set of failed and errored tests differs; a module that differs is run both ways once more
and reported only if it differs again (CPython's suite has a few timing-dependent tests) —
except a hang (the timeout) or a death by a signal with the agent in any run, which is always
reported, whatever a rerun does. Anything the agent prints (a line starting "tidemark") is a
difference too.

Exit status: 0 when no module differs, 1 otherwise, 2 on bad arguments.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import time

DEFAULT_MODULES = ["test_subprocess", "test_multiprocessing_fork", "test_threading",
                   "test_signal", "test_gc", "test_weakref", "test_os", "test_sys"]
FAILED = re.compile(r"^(FAIL|ERROR): (\S+) \(([^)]*)\)", re.M)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def version_tag(python):
    out = subprocess.run([python, "-c", "import sys; print('py%d%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_module(python, module, agent, package_dir, endpoint, interval, timeout):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("TIDEMARK_ENDPOINT", None)
    if agent:
        env["PYTHONPATH"] = package_dir
        env["TIDEMARK_ENDPOINT"] = endpoint
        env["TIDEMARK_INTERVAL"] = str(interval)
        env["TIDEMARK_SERVICE"] = "torture-" + module
        argv = [python, "-m", "tidemark", "run", "-m", "test", "-v", module]
    else:
        argv = [python, "-m", "test", "-v", module]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                              errors="replace")
        status, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        status = "timeout"
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    failed = sorted("%s %s" % (m.group(2), m.group(3)) for m in FAILED.finditer(out + err))
    printed = [line for line in err.splitlines() if line.lower().startswith("tidemark")]
    return {"status": status, "failed": failed, "printed": printed, "out": out + err,
            "seconds": time.monotonic() - started}


def missing(result):
    """The module is not in this interpreter's test package (some builds leave packages out)."""
    text = result["out"][-3000:]
    return (result["status"] != 0 and not result["failed"] and
            ("No such file or directory" in text or "No module named 'test." in text))


def broken(result):
    """A hang (the timeout), or a death by a signal (an abort, a segfault)."""
    status = result["status"]
    return status == "timeout" or (isinstance(status, int) and status < 0)


def differs(plain, agent):
    return (plain["status"] != agent["status"] or plain["failed"] != agent["failed"]
            or bool(agent["printed"]))


def describe(plain, agent):
    lines = ["    without the agent: status %s, %d failed" % (plain["status"], len(plain["failed"])),
             "    with the agent:    status %s, %d failed" % (agent["status"], len(agent["failed"]))]
    for test in sorted(set(agent["failed"]) - set(plain["failed"])):
        lines.append("      fails only with the agent: " + test)
    for test in sorted(set(plain["failed"]) - set(agent["failed"])):
        lines.append("      fails only without it:     " + test)
    for line in agent["printed"]:
        lines.append("      printed: " + line)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"),
                        help="the build directory holding python/pyXY/tidemark (default: build)")
    parser.add_argument("--python", action="append", default=[],
                        help="an interpreter to torture (repeatable; default: python3)")
    parser.add_argument("--modules", default=",".join(DEFAULT_MODULES),
                        help="comma-separated test modules (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="TIDEMARK_INTERVAL for the agent (default: %(default)s s)")
    parser.add_argument("--collector", type=int, metavar="PORT",
                        help="send to a collector on this loopback port (default: nothing "
                             "listens)")
    parser.add_argument("--timeout", type=float, default=1200,
                        help="seconds per module run (default: %(default)s)")
    args = parser.parse_args()
    pythons = args.python or ["python3"]
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    if not modules:
        parser.error("--modules names no module")
    endpoint = "tcp://127.0.0.1:%d" % (args.collector or closed_port())
    differing = []
    missing_modules = []
    for python in pythons:
        tag = version_tag(python)
        package_dir = os.path.abspath(os.path.join(args.build, "python", tag))
        if not os.path.isdir(os.path.join(package_dir, "tidemark")):
            print("%s: no agent built in %s" % (python, package_dir), file=sys.stderr)
            return 2
        for module in modules:
            plain = run_module(python, module, False, package_dir, endpoint, args.interval,
                               args.timeout)
            agent = run_module(python, module, True, package_dir, endpoint, args.interval,
                               args.timeout)
            verdict = "same"
            if missing(plain):
                verdict = "MISSING: not in this Python's test package"
                missing_modules.append((tag, module))
            elif broken(agent) and not broken(plain):
                # A hang or a signal death is never excused by a rerun that passes.
                verdict = "DIFFERS"
            elif differs(plain, agent):
                plain = run_module(python, module, False, package_dir, endpoint, args.interval,
                                   args.timeout)
                agent = run_module(python, module, True, package_dir, endpoint, args.interval,
                                   args.timeout)
                verdict = "DIFFERS" if differs(plain, agent) or broken(agent) else \
                    "same (after a rerun)"
            print("%-6s %-28s %-22s %6.1f s without, %6.1f s with the agent" % (
                tag, module, verdict, plain["seconds"], agent["seconds"]), flush=True)
            if verdict == "DIFFERS":
                print(describe(plain, agent), flush=True)
                differing.append((tag, module))
    if missing_modules:
        print("not run (absent from the interpreter's test package): %s" % ", ".join(
            "%s %s" % m for m in missing_modules))
    if differing:
        print("%d module run(s) differ with the agent: %s" % (
            len(differing), ", ".join("%s %s" % d for d in differing)))
        return 1
    print("no module differs with the agent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
