# Put on PYTHONPATH by `python -m tidemark run`, so that Python child processes started
# with spawn (multiprocessing, subprocess) report as their own instances. It then imports
# the sitecustomize it shadows, if any.
import os
import sys


def _start():
    try:
        import tidemark

        tidemark.start_from_env()
    except Exception as e:  # noqa: BLE001 - a monitoring agent must not break its host.
        if os.environ.get("TIDEMARK_DEBUG"):
            sys.stderr.write("tidemark: not started in child: %s\n" % e)


def _chain():
    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    mine = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        import sitecustomize  # noqa: F401 - the user's own, if there is one.
    except ImportError:
        if mine is not None:
            sys.modules["sitecustomize"] = mine
    finally:
        sys.path[:] = saved


_start()
_chain()
