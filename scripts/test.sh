#!/usr/bin/env bash
# Every test: npm run lint (Biome, knip, scripts/lint-packages.ts: docs/development.md), the
# freshness of the C++ headers generated from TypeScript constants (scripts/gen-native-constants.ts
# --check), the type-check of every package and of scripts/, the container image (npm run image),
# then vitest (unit, integration and end-to-end, with a real Ceph RADOS Gateway that
# test/s3/global-setup.ts installs when missing and starts), then the native addons' tests again
# on AddressSanitizer + UBSan builds (scripts/sanitize-native.sh).
# Arguments go to vitest and run only those tests.
set -euo pipefail
cd "$(dirname "$0")/.."
node --version | grep -q '^v24\.' || { echo "npm test must run on Node 24 (found $(node --version)); run it through npm so node_modules/.bin comes first" >&2; exit 1; }
npm run lint
node scripts/gen-native-constants.ts --check
npm run typecheck
# The whole suite builds the container image first, alone: a fresh build is minutes of npm ci and
# g++ that would otherwise load the cores under the other end-to-end tests. test/e2e/image.test.ts
# then finds it up to date (scripts/image.sh skips a build whose inputs did not change).
if [[ $# -eq 0 ]]; then npm run image; fi
npx vitest run "$@"
if [[ $# -eq 0 ]]; then bash scripts/sanitize-native.sh; fi
