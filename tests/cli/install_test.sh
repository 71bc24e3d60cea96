#!/usr/bin/env bash
# Installs the CLI the way users do (cmake --install, component cli), staged under DESTDIR,
# and runs it from there.
set -euo pipefail
build_dir=$1
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" cmake --install "$build_dir" --component cli --prefix /usr/local >/dev/null
"$stage/usr/local/bin/tidemark" --version | grep -q "^tidemark [0-9]"
"$stage/usr/local/bin/tidemark" why --help | grep -q "^usage: tidemark why SNAP"
