#!/usr/bin/env bash
# Checks systemd/tidemarkd.service with `systemd-analyze verify`, pointing it at the built
# tidemarkd (verify insists the binary exists). Exits 77 (skipped) without systemd-analyze.
set -euo pipefail
unit=$1 tidemarkd=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/tidemarkd|$tidemarkd|g" "$unit" > "$dir/tidemarkd.service"
out=$(systemd-analyze verify "$dir/tidemarkd.service" 2>&1) || { echo "$out"; exit 1; }
# verify also warns without failing; any line about our unit is a problem.
if grep -i "tidemarkd.service" <<<"$out"; then exit 1; fi
# The exit code for a bad configuration is the one the unit does not restart on.
grep -q '^RestartPreventExitStatus=78' "$dir/tidemarkd.service"
echo "systemd-analyze verify: clean"
