# Shared by scripts/test and scripts/demo: install what is missing, find interpreters, build.
# Sourced, not run.

TIDEMARK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$TIDEMARK_ROOT/build}
DEB_PACKAGES=(cmake g++ make pkg-config python3 python3-dev libzmq3-dev cppzmq-dev libsodium-dev libzstd-dev
              libmsgpack-cxx-dev libgtest-dev nlohmann-json3-dev libtomlplusplus-dev libboost-dev
              libspdlog-dev libedit-dev zlib1g-dev curl valgrind libssl-dev prometheus
              prometheus-alertmanager clang-16 libclang-rt-16-dev dpkg-dev file libjs-chart.js
              chromium chromium-driver python3-selenium firefox-esr fonts-dejavu-core)

log() { printf '== [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }  # Timed: where a long run spends it.

install_missing_packages() {
  local missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing missing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: packages missing (${missing[*]}) and not running as root; install them with apt-get" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints a ;-separated list of CPython interpreters (3.8-3.13) to build the agent for:
# every pyenv version in that range, else the system python3.
find_pythons() {
  local found=() root
  if [ -n "${TIDEMARK_PYTHONS:-}" ]; then echo "$TIDEMARK_PYTHONS"; return; fi
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for v in 3.8 3.9 3.10 3.11 3.12 3.13; do
    local py
    py=$(ls -d "$root"/versions/$v.*/bin/python$v 2>/dev/null | sort -V | tail -n 1)
    [ -n "$py" ] && [ -x "$py" ] && found+=("$py")
  done
  [ ${#found[@]} -eq 0 ] && found+=("$(command -v python3)")
  (IFS=';'; echo "${found[*]}")
}

# build_all [CMAKE_ARGS...]: configures and builds $BUILD_DIR.
build_all() {
  local pythons
  pythons=$(find_pythons)
  log "configuring in $BUILD_DIR (agent for: $pythons)"
  cmake -S "$TIDEMARK_ROOT" -B "$BUILD_DIR" -DTIDEMARK_PYTHONS="$pythons" "$@" >/dev/null
  log "building"
  cmake --build "$BUILD_DIR" -j "$(nproc)" -- --no-print-directory >/dev/null
}

FUZZ_HARNESSES=(fuzz_wire fuzz_control fuzz_config fuzz_meliae fuzz_store fuzz_zmtp)

# The libFuzzer harnesses (tests/fuzz), with clang-16, ASan and UBSan, in $BUILD_DIR-fuzz;
# -O1 -gline-tables-only as OSS-Fuzz builds them (a third quicker to compile than -O2 -g).
build_fuzz() {
  log "building the fuzz harnesses with clang-16 in $BUILD_DIR-fuzz"
  local flags="-O1 -gline-tables-only -DNDEBUG"
  CC=clang-16 CXX=clang++-16 cmake -S "$TIDEMARK_ROOT" -B "$BUILD_DIR-fuzz" -DTIDEMARK_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
  cmake --build "$BUILD_DIR-fuzz" -j "$(nproc)" -- --no-print-directory >/dev/null
}

# run_fuzz HARNESS LIBFUZZER_ARGS...: runs one harness on its committed corpus, new inputs
# going to $BUILD_DIR-fuzz/corpus/HARNESS, crashes to $BUILD_DIR-fuzz/artifacts/.
run_fuzz() {
  local harness=$1
  shift
  local work="$BUILD_DIR-fuzz/corpus/$harness" artifacts="$BUILD_DIR-fuzz/artifacts"
  mkdir -p "$work" "$artifacts"
  "$BUILD_DIR-fuzz/tests/fuzz/$harness" -artifact_prefix="$artifacts/$harness-" \
    -print_final_stats=1 "$@" "$work" "$TIDEMARK_ROOT/tests/fuzz/corpus/$harness"
}

