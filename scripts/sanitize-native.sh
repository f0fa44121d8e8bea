#!/usr/bin/env bash
# The worker's native addons (packages/worker/native: batch.cc and hec_scan.cc parse bytes
# from the network, zstd.cc compresses them) built with AddressSanitizer and UndefinedBehaviorSanitizer, then
# the tests that drive them hardest run against those builds: every process.test.ts case on
# the native path, batch-native.test.ts's differential fuzz (600 batches, ~150,000 random and
# garbled lines, half of them gathering the index facts; on the SSE2 and the portable build of
# batch.cc), facts.test.ts, the codecs tests,
# hec-decode.test.ts (its differential fuzz of HEC bodies against the exact path), and
# the daemon fuzz test (test/e2e/fuzz.test.ts, whose daemon's worker threads load the same builds). Any out-of-bounds access or undefined
# behaviour aborts the run. `npm test` runs it after the test suite; by hand:
#
#   bash scripts/sanitize-native.sh
#
# The builds go to a temporary directory that SLUICE_WORKER_ADDON_DIR points the loaders at;
# packages/worker/build-native is not touched. Linux and g++ only (CI=true: a missing
# compiler or sanitizer runtime fails; otherwise it says why and skips).
set -euo pipefail
cd "$(dirname "$0")/.."
CI_MODE=false
[[ "${CI:-}" == "true" || "${CI:-}" == "1" ]] && CI_MODE=true
skip() {
  if $CI_MODE; then echo "sanitize-native: ERROR: $1" >&2; exit 1; fi
  echo "sanitize-native: skipped: $1" >&2
  exit 0
}
[[ "$(uname -s)" == "Linux" ]] || skip "the native addons are built on Linux only"
CXX="${CXX:-g++}"
command -v "$CXX" >/dev/null || skip "$CXX not found (apt-get install g++)"
ASAN="$("$CXX" -print-file-name=libasan.so)"
UBSAN="$("$CXX" -print-file-name=libubsan.so)"
[[ -f "$ASAN" && -f "$UBSAN" ]] || skip "no sanitizer runtimes next to $CXX (libasan.so, libubsan.so)"
INCLUDE="$(node -e "const {createRequire}=require('node:module');const p=require('node:path');try{const n=p.dirname(require.resolve('node/package.json'));console.log(p.join(p.dirname(createRequire(p.join(n,'package.json')).resolve('node-'+process.platform+'-'+process.arch+'/package.json')),'include/node'))}catch{console.log(p.join(p.dirname(process.execPath),'../include/node'))}")"
[[ -f "$INCLUDE/node_api.h" ]] || skip "no Node headers in $INCLUDE"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# batch-scalar: batch.cc's portable loop (-DBATCH_SCALAR, what aarch64 runs); the batch tests
# run their cases on it too.
for build in batch zstd hec_scan batch-scalar; do
  addon="$build" defines=()
  if [[ "$build" == batch-scalar ]]; then addon=batch defines=(-DBATCH_SCALAR); fi
  "$CXX" -O1 -g -std=c++17 -shared -fPIC -fvisibility=hidden -fno-omit-frame-pointer \
    -fsanitize=address,undefined -fno-sanitize-recover=undefined "${defines[@]}" \
    -I "$INCLUDE" "packages/worker/native/$addon.cc" -o "$OUT/$build.node"
done
echo "sanitize-native: ASan + UBSan builds of batch.cc (SSE2 and portable), zstd.cc and hec_scan.cc in $OUT" >&2
# detect_leaks=0: Node itself does not free everything at exit. CI=true: a test that cannot
# load the addon fails instead of skipping.
LD_PRELOAD="$ASAN:$UBSAN" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  SLUICE_WORKER_ADDON_DIR="$OUT" BATCH_NATIVE_FUZZ_BATCHES=600 CI=true \
  npx vitest run packages/worker/src/batch-native.test.ts packages/worker/src/process.test.ts packages/worker/src/facts.test.ts packages/worker/src/codecs.test.ts packages/worker/src/hec-decode.test.ts test/e2e/fuzz.test.ts
