#!/usr/bin/env bash
# Installs the agent's wheel for one interpreter with pip into a new virtualenv (offline: pip
# comes from the interpreter's own ensurepip, the wheel from the build), checks its metadata and
# every installed file against RECORD, takes a snapshot with it, then uninstalls it and checks
# that nothing of it is left.
set -euo pipefail
build_dir=$1 python=$2
xy=$("$python" -c 'import sys; print("%d%d" % sys.version_info[:2])')
shopt -s nullglob
wheels=("$build_dir"/dist/tidemark-*-cp"$xy"-cp"$xy"-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
  echo "error: expected one wheel for cp$xy in $build_dir/dist, found ${#wheels[@]}" >&2
  exit 1
fi
wheel=${wheels[0]}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_NO_CACHE_DIR=1
"$venv/bin/python" -m pip install -q "$wheel"
cd "$venv"  # Away from the source tree: the import must come from site-packages.
"$venv/bin/python" - "${wheel##*/}" <<'PY'
import base64, hashlib, sys
import importlib.metadata as metadata
import tidemark
assert tidemark.__file__.startswith(sys.prefix), tidemark.__file__
version = sys.argv[1].split("-")[1]
assert metadata.version("tidemark") == version, (metadata.version("tidemark"), version)
checked = 0
for f in metadata.files("tidemark"):
    if f.hash is None:
        continue  # RECORD itself, and what pip wrote (INSTALLER).
    data = f.read_binary()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert (f.hash.mode, f.hash.value, f.size) == ("sha256", digest, len(data)), f
    checked += 1
assert checked >= 6, checked  # The package's sources, the module, the metadata.
s = tidemark.snapshot()
assert s.objects > 1000, s
print("installed from the wheel, %d files match RECORD: %s" % (checked, s))
PY
"$venv/bin/python" -m tidemark --help | grep -q "python -m tidemark run"
"$venv/bin/python" -m pip uninstall -y -q tidemark
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
left=$(ls "$site" | grep -i tidemark || true)
if [ -n "$left" ]; then
  echo "error: left in $site after pip uninstall: $left" >&2
  exit 1
fi
echo "${wheel##*/}: installed, snapshot taken, uninstalled with nothing left"
