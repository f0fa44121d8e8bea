#!/usr/bin/env bash
# Makes sure the Ceph daemons the S3 tests run against are installed (Debian bookworm, 16.2.x):
# radosgw + a single memstore OSD + a monitor, see test/s3/rgw.ts and
# /work/shared/reference/wire-contracts.md section 4; and tini, the image's PID 1, which the
# Dockerfile test runs the entrypoint under. Idempotent: a no-op (and silent) when
# everything is already there. About a minute of apt on a fresh machine.
# Loud on failure, non-zero exit when it cannot install.
set -euo pipefail

need=()
for bin in radosgw ceph-mon ceph-osd ceph monmaptool radosgw-admin zstd tini; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
[ "${#need[@]}" -eq 0 ] && exit 0

fail() {
  echo "ensure-ceph: $*" >&2
  echo "ensure-ceph: the S3 tests need a real Ceph RADOS Gateway; install by hand with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common zstd tini" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "missing ${need[*]} and apt-get is not available"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "missing ${need[*]}; not root and no sudo"
  SUDO=(sudo -n)
fi

log="$(mktemp -t ensure-ceph.XXXXXX.log)"
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get update >"$log" 2>&1; then
  cat "$log" >&2
  fail "apt-get update failed (log above)"
fi
# A fresh CI machine may still be running unattended-upgrades: wait for the dpkg lock.
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 \
  radosgw ceph-mon ceph-osd ceph-common zstd tini >>"$log" 2>&1; then
  tail -n 60 "$log" >&2
  fail "apt-get install failed (log tail above, full log in $log)"
fi

for bin in "${need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || fail "installed the packages but '$bin' is still not on PATH"
done
rm -f "$log"
