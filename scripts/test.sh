#!/usr/bin/env bash
# Every test: type-check every package, then vitest (unit, integration and end-to-end, with a
# real Ceph RADOS Gateway that test/s3/global-setup.ts installs when missing and starts), then
# the native addons' tests again on AddressSanitizer + UBSan builds (scripts/sanitize-native.sh).
# Arguments go to vitest and run only those tests.
set -euo pipefail
cd "$(dirname "$0")/.."
node --version | grep -q '^v24\.' || { echo "npm test must run on Node 24 (found $(node --version)); run it through npm so node_modules/.bin comes first" >&2; exit 1; }
npx turbo run typecheck --output-logs=errors-only
npx vitest run "$@"
if [[ $# -eq 0 ]]; then bash scripts/sanitize-native.sh; fi
