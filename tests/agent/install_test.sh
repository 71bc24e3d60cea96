#!/usr/bin/env bash
# Installs the agent for one interpreter the way users do (cmake --install into its
# site-packages), staged under DESTDIR, then imports it from there and takes a snapshot.
set -euo pipefail
build_dir=$1 component=$2 python=$3
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" cmake --install "$build_dir" --component "$component" >/dev/null
platlib=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
test -f "$stage$platlib/tidemark/__init__.py"
ls "$stage$platlib"/tidemark/_native.*.so >/dev/null
cd "$stage"
PYTHONPATH="$stage$platlib" "$python" -c '
import tidemark, sys
assert tidemark.__file__.startswith(sys.argv[1]), tidemark.__file__
s = tidemark.snapshot()
assert s.objects > 1000, s
print("installed tidemark takes snapshots:", s)' "$stage"
PYTHONPATH="$stage$platlib" "$python" -m tidemark --help | grep -q "python -m tidemark run"
