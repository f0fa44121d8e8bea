# syntax=docker/dockerfile:1
#
# Sluice container image: the daemon on Node.js 24 (TypeScript by type stripping, no build
# step but npm ci's compile of the native addons), production dependencies only, a
# non-root user, tini as PID 1.
#
#   docker build -t sluice:0.1.0 .
#   docker run --rm -p 5170:5170 -p 6050:6050/udp -p 9598:9598 -v "$PWD/out:/var/lib/sluice/out" sluice:0.1.0
#
# Built and run by the tests: `npm run image` (scripts/image.sh) builds it with buildah as
# localhost/sluice:<version>, on a Node 24 bookworm base made locally where no registry is
# reachable (NODE_IMAGE), and test/e2e/image.test.ts runs it; test/deploy/dockerfile.test.ts
# also checks it statically and replays its install without a container engine.
# docs/deploy.md explains the choices.

ARG NODE_IMAGE=node:24-bookworm-slim

# Stage 1: the package manifests alone, and the inputs of the native addons that the root
# postinstall compiles (scripts/build-native.ts, packages/sources/native, packages/worker/native).
# The npm ci layer
# below depends only on them, so editing a source file does not reinstall dependencies
# (BuildKit caches COPY --from by content).
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN find . -type f ! -name package.json ! -name package-lock.json ! -path ./scripts/build-native.ts ! -path './packages/sources/native/*' ! -path './packages/worker/native/*' -delete \
 && find . -depth -mindepth 1 -type d -empty -delete

# Stage 2: the daemon's production dependencies. --omit=dev leaves out the root devDependency
# `node` (the registry's Node 24 for machines that lack it: the image has its own), vitest,
# typescript, turbo, bun; --workspace apps/sluice installs what the daemon and the @sluice/*
# workspaces it uses need, and links those workspaces into node_modules/@sluice.
# The root postinstall compiles the native addons (the UDP reader, packages/sources/build; the
# worker's batch processor and zstd compressor, packages/worker/build-native) with g++ against
# the image's own Node headers (/usr/local/include/node): no node-gyp, no make. CI=true makes a
# failed compile fail the build instead of falling back to the slower TypeScript/node paths.
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=manifests /src/ ./
RUN --mount=type=cache,target=/root/.npm \
    CI=true npm ci --omit=dev --workspace apps/sluice --include-workspace-root=false --no-audit --no-fund \
 && test ! -e node_modules/node && test ! -e node_modules/vitest \
 && test -f packages/sources/build/udp_recv.node \
 && test -f packages/worker/build-native/batch.node && test -f packages/worker/build-native/zstd.node

# Stage 3: what runs.
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM/SIGINT to Node (whose handlers drain), gives the default
# action to a signal that arrives before Node has installed its handlers (a PID 1 ignores
# such signals), and reaps orphaned grandchildren (an AWS credential_process, for one).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid/gid: Kubernetes can check runAsNonRoot without reading /etc/passwd, and
# the manifests in deploy/kubernetes name the same ids (runAsUser/runAsGroup 10001).
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sluice --shell /usr/sbin/nologin sluice \
 && mkdir -p /var/lib/sluice/out /etc/sluice \
 && chown -R 10001:10001 /var/lib/sluice
WORKDIR /app
ENV NODE_ENV=production
# node_modules with its workspace links, every package manifest they point at, and the native
# addons compiled there (packages/sources/build, packages/worker/build-native; g++ stays in deps).
COPY --from=deps /app/ ./
# Sources (tests, benches and docs are left out by .dockerignore).
COPY packages/ ./packages/
COPY apps/sluice/ ./apps/sluice/
# The worker threads' modules, type-stripped once (packages/worker/src/entry.ts): ~11 MiB less
# RSS per worker thread than loading the .ts sources.
COPY scripts/build-worker.ts ./scripts/
RUN node scripts/build-worker.ts && test -f packages/worker/build/manifest.json
# The default config of the image: every interface, file sink under /var/lib/sluice/out.
# Kubernetes mounts its ConfigMap over /etc/sluice.
COPY deploy/docker/sluice.yaml /etc/sluice/sluice.yaml
USER 10001:10001
# tcp json_lines, udp json_lines, Splunk HEC (the splunk_hec source), API (/metrics, /healthz, /readyz).
EXPOSE 5170/tcp 6050/udp 8088/tcp 9598/tcp
# Only for `docker run`: Kubernetes uses its own probes (deploy/kubernetes) and ignores this.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9598/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: tini is PID 1 and Node its only child. For `run`, the bin launcher restarts
# itself in place (execve, same pid) with its runtime settings (apps/sluice/bin/sluice.js).
# The image's node is 24, so the sh launcher apps/sluice/bin/sluice (for hosts with an older
# node) has nothing to find.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/apps/sluice/bin/sluice.js"]
CMD ["run", "--config", "/etc/sluice/sluice.yaml"]
