# Put first on PYTHONPATH by `python -m tidemark run`, so that the program and the Python
# processes it starts run the agent. Any interpreter may import this file (a child may be
# another Python): it starts the agent only where the tidemark package next to it was built
# for this interpreter's ABI, loads that package alone (its directory is not added to
# sys.path, nor is any other package), takes its own directory off sys.path, and then
# imports the sitecustomize it shadows, if any. It never raises.
import os
import sys


def _tidemark_package():
    """The tidemark package next to this file, loaded by location, or None when it was built
    for another interpreter."""
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    try:
        # The import system's own modules, always loaded: importlib.util costs an import.
        bootstrap = sys.modules["_frozen_importlib"]
        external = sys.modules["_frozen_importlib_external"]
        names = os.listdir(package)
        if not any(("_native" + suffix) in names for suffix in external.EXTENSION_SUFFIXES):
            return None
        if "tidemark" in sys.modules:
            return sys.modules["tidemark"]
        spec = external.spec_from_file_location(
            "tidemark", os.path.join(package, "__init__.py"),
            submodule_search_locations=[package])
        module = bootstrap.module_from_spec(spec)
        sys.modules["tidemark"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop("tidemark", None)
            raise
        return module
    except Exception as e:  # noqa: BLE001 - a monitoring agent must not break its host.
        if os.environ.get("TIDEMARK_DEBUG") and sys.stderr is not None:
            sys.stderr.write("tidemark: not loaded: %s\n" % e)
        return None


def _start():
    main = os.environ.pop("TIDEMARK_RUN_PID", None) == str(os.getpid())
    tidemark = _tidemark_package()
    if tidemark is not None:
        tidemark.start_from_env(child=not main)


def _chain():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != here]
    mine = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401 - the user's own, if there is one.
    except ImportError:
        if mine is not None:
            sys.modules["sitecustomize"] = mine


_start()
_chain()
