#!/usr/bin/env bash
# Builds the agent alone (TIDEMARK_AGENT_ONLY) in a new build tree with every dependency of the
# collector, the CLI and the tests made unfindable, then installs its wheel (wheel_test.sh).
set -euo pipefail
source_dir=$1 python=$2
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
unfindable=()
for package in Boost spdlog OpenSSL tomlplusplus nlohmann_json ZLIB GTest; do
  unfindable+=("-DCMAKE_DISABLE_FIND_PACKAGE_$package=ON")
done
cmake -S "$source_dir" -B "$build" -DTIDEMARK_AGENT_ONLY=ON -DTIDEMARK_PYTHONS="$python" \
      "${unfindable[@]}" > "$build/configure.log"
cmake --build "$build" -j "$(nproc)" > "$build/build.log" || { tail -n 30 "$build/build.log" >&2; exit 1; }
grep -q "libedit" "$build/CMakeCache.txt" && { echo "error: the agent-only build looked for libedit" >&2; exit 1; }
"$(dirname "$0")/wheel_test.sh" "$build" "$python"
