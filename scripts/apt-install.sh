#!/usr/bin/env bash
# Installs Debian packages that the tests and benchmarks run (Ceph, Prometheus) when commands
# they provide are missing: scripts/ensure-ceph.sh and scripts/ensure-prometheus.sh call it.
#
#   apt-install.sh <who> <why> "<command> ..." <package>...
#
# Idempotent: a no-op (and silent) when every command is on PATH. Otherwise one apt-get update,
# then apt-get install -y --no-install-recommends <package>... (as root, or through sudo -n).
# Package scripts may not start services: unless the machine already has a policy-rc.d, one
# that denies every start (exit 101, the Debian policy-rc.d interface) is in place while apt
# runs, so a package with a daemon (prometheus) installs without one listening on a port.
# Runs one at a time (flock): two test files may ask at once, and apt takes its locks without waiting.
# Loud on failure, non-zero exit when it cannot install.
set -euo pipefail

[ "$#" -ge 4 ] || { echo "usage: apt-install.sh <who> <why> \"<command> ...\" <package>..." >&2; exit 2; }
who="$1"
why="$2"
read -r -a commands <<<"$3"
shift 3
packages=("$@")

missing() {
  need=()
  for bin in "${commands[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
  done
  [ "${#need[@]}" -ne 0 ]
}
missing || exit 0

fail() {
  echo "$who: $*" >&2
  echo "$who: $why; install by hand with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "missing ${need[*]} and apt-get is not available"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "missing ${need[*]}; not root and no sudo"
  SUDO=(sudo -n)
fi

# One install at a time; whoever waited finds the commands there and stops.
lock="${TMPDIR:-/tmp}/sluice-apt-install.lock"
if command -v flock >/dev/null 2>&1 && { exec 9>>"$lock"; } 2>/dev/null; then
  flock -w 900 9 || fail "waited 15 minutes for another apt-install.sh (lock $lock)"
  missing || exit 0
fi

log="$(mktemp -t "$who.XXXXXX.log")"
policy=/usr/sbin/policy-rc.d
placed=0
cleanup() {
  if [ "$placed" -eq 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Placed by sluice scripts/apt-install.sh while it installs packages: no service starts.\nexit 101\n' |
    "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  placed=1
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update >"$log" 2>&1; then
  cat "$log" >&2
  fail "apt-get update failed (log above)"
fi
# A fresh CI machine may still be running unattended-upgrades: wait for the dpkg lock.
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 \
  "${packages[@]}" >>"$log" 2>&1; then
  tail -n 60 "$log" >&2
  fail "apt-get install failed (log tail above, full log in $log)"
fi

for bin in "${need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || fail "installed the packages but '$bin' is still not on PATH"
done
rm -f "$log"
