#!/usr/bin/env bash
# Makes sure promtool and prometheus are installed (Debian bookworm's prometheus package,
# 2.42): the tests lint /metrics with `promtool check metrics` (test/e2e/promtool.test.ts) and
# find both binaries through test/helpers/prometheus.ts. Idempotent: a no-op (and silent) when
# both are there. Loud on failure, non-zero exit when it cannot install (scripts/apt-install.sh).
#
# The package ships a Prometheus server service listening on :9090. apt-install.sh keeps
# package scripts from starting it (policy-rc.d); on a machine run by systemd the package also
# enables it for the next boot, so a fresh install here disables it again: the tests start
# their own server when they want one.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && exit 0
bash "$here/apt-install.sh" ensure-prometheus \
  "the metrics tests need promtool (and prometheus) from Debian's prometheus package" \
  "promtool prometheus" \
  prometheus
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)
  "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
