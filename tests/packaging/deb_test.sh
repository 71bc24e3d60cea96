#!/usr/bin/env bash
# Makes the Debian package (cpack -G DEB), installs it with dpkg -i, checks what it installed
# (the programs, the unit naming /usr/bin/tidemarkd, a valid /etc/tidemark/tidemarkd.toml),
# then removes and purges it and checks that the store is left and the configuration gone. Needs
# root; refuses to run where a tidemark package is installed already (it would replace it), or
# where /etc/tidemark/tidemarkd.toml exists (purging would remove it).
set -euo pipefail
build_dir=$1
if dpkg -s tidemark >/dev/null 2>&1; then
  echo "error: a tidemark package is installed on this machine; not touching it" >&2
  exit 1
fi
if [ -e /etc/tidemark/tidemarkd.toml ]; then
  echo "error: /etc/tidemark/tidemarkd.toml exists on this machine; not touching it" >&2
  exit 1
fi
work=$(mktemp -d)
store=/var/lib/tidemark
made_store=
made_etc=
[ -e /etc/tidemark ] || made_etc=1
cleanup() {
  dpkg -P tidemark >/dev/null 2>&1 || true
  [ -z "$made_store" ] || rm -rf "$store"
  [ -z "$made_etc" ] || rm -rf /etc/tidemark
  rm -rf "$work"
}
trap cleanup EXIT
(cd "$build_dir" && cpack -G DEB -B "$work" >"$work/cpack.log") || { cat "$work/cpack.log" >&2; exit 1; }
deb=$(ls "$work"/tidemark_*_amd64.deb)
dpkg -i "$deb" >/dev/null
/usr/bin/tidemarkd --check-config /etc/tidemark/tidemarkd.toml
/usr/bin/tidemarkd --version | grep -q "^tidemarkd "
/usr/bin/tidemark --version | grep -q "^tidemark "
grep -q "^ExecStart=/usr/bin/tidemarkd " /usr/lib/systemd/system/tidemarkd.service
grep -q "^ProtectSystem=strict" /usr/lib/systemd/system/tidemarkd.service
grep -q -- "--check-config FILE" /usr/share/doc/tidemark/tidemarkd.txt
# A store the daemon wrote, and an admin's configuration: both outlive the package.
if [ ! -e "$store" ]; then made_store=1; mkdir -p "$store"; fi
echo "kept" >"$store/canary"
echo '# the admin wrote this' >>/etc/tidemark/tidemarkd.toml
dpkg -i "$deb" >/dev/null  # Upgrade in place: the admin's configuration is not replaced.
grep -q "the admin wrote this" /etc/tidemark/tidemarkd.toml
dpkg -r tidemark >/dev/null
[ ! -e /usr/bin/tidemarkd ] && [ ! -e /usr/bin/tidemark ]
[ "$(cat "$store/canary")" = kept ]
[ -e /etc/tidemark/tidemarkd.toml ]  # Removing keeps it; purging removes it.
dpkg -P tidemark >/dev/null
[ "$(cat "$store/canary")" = kept ]
[ ! -e /etc/tidemark/tidemarkd.toml ]
echo "${deb##*/}: installed, configuration valid, removed and purged: the store left, the configuration gone"
