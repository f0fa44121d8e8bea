#!/usr/bin/env bash
# Builds the container image localhost/sluice:<version> (version of the root package.json) from
# the Dockerfile with buildah (`npm run image`; test/e2e/image.test.ts runs it before it runs the
# image). Prints the image reference as its last line of stdout; progress goes to stderr.
#
# The Dockerfile is built FROM node:24-bookworm-slim wherever a registry is reachable. Here no
# container registry is, so its NODE_IMAGE is a base made on this machine with the same layout:
#   - Debian bookworm, minbase, from mmdebstrap (the Debian mirror is reachable);
#   - /usr/local/bin/node and /usr/local/include/node from the npm registry's Node (the root
#     devDependency `node`: its platform package ships the binary and the headers that the
#     native addons compile against);
#   - npm and corepack under /usr/local/lib/node_modules, linked from /usr/local/bin, packed
#     from the npm registry at the versions this Node release bundles;
#   - the user node (uid/gid 1000), PATH, NODE_VERSION and CMD ["node"] as in the official image.
# The base is tagged localhost/sluice-node-base:<node>-npm<npm>-r<revision> and built only when
# that tag is missing (a minute or two); bump BASE_REVISION when its recipe changes.
#
# Storage: vfs (no overlay or fuse needed); isolation: chroot (no runtime, no network namespace:
# RUN steps share the host's network, which apt-get and npm ci need). The image keeps Docker's
# format so that its HEALTHCHECK survives (OCI image configs have no healthcheck).
#
# Environment: SLUICE_IMAGE_BASE_ONLY=1 stops after the base.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }

# Pins that belong to the Node release (its CHANGELOG's "deps: upgrade npm / update corepack"):
# update them with the root devDependency `node`.
NPM_VERSION=11.19.0
COREPACK_VERSION=0.36.0
BASE_REVISION=1
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security

bash scripts/apt-install.sh image \
  "npm run image builds the container image with buildah, on a Debian base made by mmdebstrap" \
  "buildah mmdebstrap newuidmap" \
  buildah mmdebstrap uidmap

node_pkg=""
for d in node_modules/node/node_modules/node-linux-*; do
  if [ -x "$d/bin/node" ]; then node_pkg="$d"; fi
done
[ -n "$node_pkg" ] || die "no Node binary in node_modules/node (the root devDependency): run npm ci first"
[ -f "$node_pkg/include/node/node_api.h" ] || die "$node_pkg has no include/node: the native addons need Node's headers"
node_version="$("$node_pkg/bin/node" --version)"
node_version="${node_version#v}"
case "$node_version" in 24.*) ;; *) die "node_modules/node is Node $node_version; the image runs Node 24" ;; esac
version="$("$node_pkg/bin/node" -p "require('./package.json').version")"

# One build at a time on a machine (two checkouts' tests may ask at once): whoever waited finds
# the base, and the image if its inputs are the same.
if command -v flock >/dev/null 2>&1 && { exec 8>>"${TMPDIR:-/tmp}/sluice-image.lock"; } 2>/dev/null; then
  flock -w 1800 8 || die "waited 30 minutes for another npm run image (lock ${TMPDIR:-/tmp}/sluice-image.lock)"
fi

export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
bh() { buildah --storage-driver vfs "$@"; }

base="localhost/sluice-node-base:${node_version}-npm${NPM_VERSION}-r${BASE_REVISION}"
image="localhost/sluice:${version}"

build_base() {
  local work
  work="$(mktemp -d -t sluice-image-base.XXXXXX)"
  # shellcheck disable=SC2064 # expand now: work is local
  trap "rm -rf '$work'" EXIT
  say "making $base (Debian $SUITE minbase, Node $node_version, npm $NPM_VERSION, corepack $COREPACK_VERSION)"
  (cd "$work" && npm pack --silent "npm@$NPM_VERSION" "corepack@$COREPACK_VERSION" >/dev/null) ||
    die "npm pack npm@$NPM_VERSION corepack@$COREPACK_VERSION failed (is the npm registry reachable?)"
  cp -a "$node_pkg" "$work/node"
  # The hooks run with the new root filesystem as $1, as root (or in a user namespace as root).
  # Official image layout: the Node tarball unpacked into /usr/local, npm and corepack as the
  # tarball bundles them, nodejs -> node.
  # The dpkg path excludes of Debian's slim images (no man pages, docs or translations): the
  # packages installed later by the Dockerfile's apt-get leave them out too.
  mmdebstrap --variant=minbase --skip=output/dev --aptopt='Acquire::Retries "3"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/groff/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="tar -C '$work/node' -c bin include | tar -C \"\$1/usr/local\" -x --no-same-owner" \
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" \"\$1/usr/local/lib/node_modules/corepack\"" \
    --customize-hook="tar -xzf '$work/npm-$NPM_VERSION.tgz' --strip-components=1 --no-same-owner -C \"\$1/usr/local/lib/node_modules/npm\"" \
    --customize-hook="tar -xzf '$work/corepack-$COREPACK_VERSION.tgz' --strip-components=1 --no-same-owner -C \"\$1/usr/local/lib/node_modules/corepack\"" \
    --customize-hook="ln -s node \"\$1/usr/local/bin/nodejs\"" \
    --customize-hook="ln -s ../lib/node_modules/npm/bin/npm-cli.js \"\$1/usr/local/bin/npm\"" \
    --customize-hook="ln -s ../lib/node_modules/npm/bin/npx-cli.js \"\$1/usr/local/bin/npx\"" \
    --customize-hook="ln -s ../lib/node_modules/corepack/dist/corepack.js \"\$1/usr/local/bin/corepack\"" \
    --customize-hook="chroot \"\$1\" groupadd --gid 1000 node" \
    --customize-hook="chroot \"\$1\" useradd --uid 1000 --gid node --shell /bin/bash --create-home node" \
    --customize-hook="chroot \"\$1\" /usr/local/bin/node --version" \
    --customize-hook="chroot \"\$1\" env PATH=/usr/local/bin:/usr/bin:/bin npm --version" \
    "$SUITE" "$work/rootfs.tar" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main" \
    >"$work/mmdebstrap.log" 2>&1 || { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed (log tail above)"; }
  local ctr
  ctr="$(bh from --quiet scratch)"
  bh add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  bh config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$node_version" \
    --cmd node \
    --label org.opencontainers.image.description="Debian $SUITE with Node.js $node_version under /usr/local (npm $NPM_VERSION, corepack $COREPACK_VERSION), in the layout of node:24-$SUITE-slim" \
    "$ctr"
  bh commit --quiet --rm --format docker "$ctr" "$base" >/dev/null
  rm -rf "$work"
  trap - EXIT
}

if bh inspect --type image "$base" >/dev/null 2>&1; then
  say "base $base is there"
else
  started=$SECONDS
  build_base
  say "made $base in $((SECONDS - started)) s"
fi
[ "${SLUICE_IMAGE_BASE_ONLY:-}" = 1 ] && { echo "$base"; exit 0; }

# The Dockerfile's npm ci reaches the registry the way this machine's npm does: when npm here
# trusts an extra CA (a TLS-inspecting proxy) or uses another registry, an npmrc saying so is
# mounted over the base's empty /usr/local/etc (npm's global config) for the build's RUN steps
# only; it is not in any layer.
build_opts=()
npm_ca="$(npm config get cafile 2>/dev/null || true)"
[ "$npm_ca" = null ] || [ "$npm_ca" = undefined ] && npm_ca=""
[ -n "$npm_ca" ] || npm_ca="${NODE_EXTRA_CA_CERTS:-}"
npm_registry="$(npm config get registry 2>/dev/null || true)"
if [ -n "$npm_ca" ] || { [ -n "$npm_registry" ] && [ "$npm_registry" != https://registry.npmjs.org/ ]; }; then
  etc="$(mktemp -d -t sluice-image-npmrc.XXXXXX)"
  trap "rm -rf '$etc'" EXIT
  : >"$etc/npmrc"
  if [ -n "$npm_ca" ]; then
    [ -r "$npm_ca" ] || die "npm's cafile $npm_ca is not readable"
    cp "$npm_ca" "$etc/ca.crt"
    echo "cafile=/usr/local/etc/ca.crt" >>"$etc/npmrc"
  fi
  [ -n "$npm_registry" ] && echo "registry=$npm_registry" >>"$etc/npmrc"
  chmod -R a+rX "$etc"
  build_opts+=(--volume "$etc:/usr/local/etc:ro")
fi

# What the build reads, per the Dockerfile and .dockerignore (a superset: a test file's change
# rebuilds too). Under vfs even a build whose every step is cached copies the whole filesystem
# at each step (minutes), so when the image was built from these very inputs on this base, the
# build is skipped: the image also carries the tag <version>-inputs.<digest>.
inputs=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  inputs="$({
    echo "$base"
    git ls-files -z -co --exclude-standard -- Dockerfile .dockerignore package.json package-lock.json \
      packages apps/sluice apps/loadgen/package.json bench/package.json test/package.json \
      scripts/build-native.ts scripts/build-worker.ts deploy/docker |
      sort -z | while IFS= read -r -d '' f; do if [ -f "$f" ]; then sha256sum "$f"; fi; done
  } | sha256sum | cut -c1-16)"
fi
stamp="$image-inputs.$inputs"
image_id() { bh inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }
if [ -n "$inputs" ] && [ -n "$(image_id "$stamp")" ] && [ "$(image_id "$stamp")" = "$(image_id "$image")" ]; then
  say "$image is up to date (built from these inputs on $base)"
  echo "$image"
  exit 0
fi

started=$SECONDS
say "building $image from Dockerfile on $base"
# --layers: a rebuild reuses every step whose inputs did not change.
bh bud --isolation chroot --format docker --layers --pull=never "${build_opts[@]}" \
  --build-arg NODE_IMAGE="$base" -t "$image" -f Dockerfile . >&2 ||
  die "buildah bud failed (output above)"
if [ -n "$inputs" ]; then
  # One stamp per version: the last build's.
  for old in $(bh images --format '{{.Name}}:{{.Tag}}' | grep -F "$image-inputs." || true); do
    bh rmi "$old" >/dev/null 2>&1 || true
  done
  bh tag "$image" "$stamp"
fi
say "built $image in $((SECONDS - started)) s"
echo "$image"
