#!/usr/bin/env bash
# Makes sure the Ceph daemons the S3 tests run against are installed (Debian bookworm, 16.2.x):
# radosgw + a single memstore OSD + a monitor, see test/s3/rgw.ts and docs/wire.md, "S3 and
# Ceph RGW"; and tini, the image's PID 1, which the Dockerfile test runs the entrypoint under.
# Idempotent: a no-op (and silent) when everything is already there. About a minute of apt on
# a fresh machine. Loud on failure, non-zero exit when it cannot install (scripts/apt-install.sh).
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" ensure-ceph \
  "the S3 tests need a real Ceph RADOS Gateway" \
  "radosgw ceph-mon ceph-osd ceph monmaptool radosgw-admin zstd tini" \
  radosgw ceph-mon ceph-osd ceph-common zstd tini
