/**
 * The Dockerfile, on a machine without a Docker engine: checked statically (stages, base
 * image, USER, production-only install, exec-form ENTRYPOINT with tini, EXPOSE against the
 * config), linted with dockerfile-utils, and its build replayed without Docker
 * (test/deploy/docker-build.ts): the deps stage's `npm ci` run for real, the final stage's
 * COPYs emulated, and the resulting tree run with the image's ENTRYPOINT and CMD, as PID 1 of
 * a fresh PID namespace, to show that SIGTERM drains and every line lands.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { connect } from 'node:net';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '@sluice/config';
import { listObjects, readObjectLines } from '../helpers/daemon.ts';
import {
  contextFiles,
  dockerignore,
  findKeeps,
  parseDockerfile,
  replayBuild,
  splitFlags,
  type Stage,
} from './docker-build.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const TEXT = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const DF = parseDockerfile(TEXT);
const FINAL = DF.stages.at(-1)!;
const byKeyword = (s: Stage, k: string) => s.instructions.filter((i) => i.keyword === k);
const json = (s: Stage, k: string): string[] => {
  const ins = byKeyword(s, k);
  expect(ins).toHaveLength(1);
  return JSON.parse(ins[0]!.args) as string[];
};

describe('Dockerfile, statically', () => {
  it('lints clean (dockerfile-utils)', () => {
    expect(lintDockerfile(TEXT).map((d) => `${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('is multi-stage, every stage on the Node 24 slim image', () => {
    expect(DF.stages.map((s) => s.name)).toEqual(['manifests', 'deps', 'runtime']);
    expect(DF.globalArgs['NODE_IMAGE']).toMatch(/^node:24(\.\d+)*-(bookworm-)?slim$/);
    for (const s of DF.stages) expect(s.image).toBe('${NODE_IMAGE}');
  });

  it('installs production dependencies of the daemon only, in the deps stage', () => {
    const runs = byKeyword(DF.stages[1]!, 'RUN').filter((r) => !r.args.startsWith('apt-get '));
    expect(runs).toHaveLength(1);
    const cmd = splitFlags(runs[0]!.args).rest.join(' ');
    // CI=true: the postinstall's compile of the native UDP reader fails the build, never skips.
    expect(cmd).toMatch(/^CI=true npm ci /);
    for (const flag of ['--omit=dev', '--workspace apps/sluice', '--include-workspace-root=false'])
      expect(cmd).toContain(flag);
    expect(cmd).toContain('test -f packages/sources/build/udp_recv.node');
    expect(cmd).toContain(
      'test -f packages/worker/build-native/batch.node && test -f packages/worker/build-native/zstd.node',
    );
    // The final stage installs nothing from npm and takes node_modules from deps only.
    for (const r of byKeyword(FINAL, 'RUN')) expect(r.args).not.toMatch(/\bnpm\b|\byarn\b|\bpnpm\b/);
    const fromDeps = byKeyword(FINAL, 'COPY').filter((c) => splitFlags(c.args).flags['from'] !== undefined);
    expect(fromDeps.map((c) => c.args)).toEqual(['--from=deps /app/ ./']);
    // The first stage keeps package manifests and the native reader's inputs only, so the npm ci
    // layer is cached across source edits.
    const keep = findKeeps(byKeyword(DF.stages[0]!, 'RUN')[0]!.args);
    for (const f of [
      'package.json',
      'package-lock.json',
      'packages/ring/package.json',
      'scripts/build-native.ts',
      'packages/sources/native/udp_recv.cc',
      'packages/worker/native/batch.cc',
      'packages/worker/native/zstd.cc',
    ])
      expect(keep(f), f).toBe(true);
    for (const f of [
      'packages/ring/src/ring.ts',
      'packages/sources/src/udp/udp.ts',
      'apps/sluice/bin/sluice.js',
      'scripts/test.sh',
    ])
      expect(keep(f), f).toBe(false);
  });

  it('the deps stage has a C++ compiler for the native UDP reader; the final stage has none', () => {
    const apt = byKeyword(DF.stages[1]!, 'RUN').filter((r) => r.args.startsWith('apt-get '));
    expect(apt).toHaveLength(1);
    expect(apt[0]!.args).toMatch(
      /apt-get install -y --no-install-recommends g\+\+ && rm -rf \/var\/lib\/apt\/lists\/\*/,
    );
    // Before npm ci, which runs the postinstall that compiles.
    expect(DF.stages[1]!.instructions.indexOf(apt[0]!)).toBeLessThan(
      DF.stages[1]!.instructions.findIndex((i) => i.args.includes('npm ci')),
    );
    for (const r of byKeyword(FINAL, 'RUN')) expect(r.args).not.toMatch(/g\+\+|gcc|build-essential|\bmake\b/);
    // The replay below does not run apt-get: what it would install must be here.
    expect(spawnSync('g++', ['--version']).status, 'g++ (apt-get install g++)').toBe(0);
  });

  it('runs as a numeric non-root user, set after every RUN and COPY', () => {
    const users = byKeyword(FINAL, 'USER');
    expect(users).toHaveLength(1);
    const m = /^(\d+):(\d+)$/.exec(users[0]!.args)!;
    expect(Number(m[1])).toBeGreaterThan(0);
    const userAt = FINAL.instructions.indexOf(users[0]!);
    for (const i of FINAL.instructions.slice(userAt)) expect(['RUN', 'COPY', 'ADD']).not.toContain(i.keyword);
    expect(byKeyword(FINAL, 'RUN').some((r) => r.args.includes(`useradd --system --uid ${m[1]} --gid ${m[2]}`))).toBe(
      true,
    );
  });

  it('ENTRYPOINT is exec form with tini as PID 1, then node on the bin launcher; CMD is `run --config` the image config', () => {
    expect(json(FINAL, 'ENTRYPOINT')).toEqual(['/usr/bin/tini', '--', 'node', '/app/apps/sluice/bin/sluice.js']);
    expect(json(FINAL, 'CMD')).toEqual(['run', '--config', '/etc/sluice/sluice.yaml']);
    expect(byKeyword(FINAL, 'RUN').some((r) => /apt-get install -y --no-install-recommends tini/.test(r.args))).toBe(
      true,
    );
    expect(byKeyword(FINAL, 'COPY').map((c) => c.args)).toContain('deploy/docker/sluice.yaml /etc/sluice/sluice.yaml');
  });

  it('EXPOSE names the ports of the image config (tcp, udp, api) and HEC 8088; HEALTHCHECK asks the API', () => {
    const exposed = byKeyword(FINAL, 'EXPOSE').flatMap((e) => e.args.split(' '));
    expect(exposed).toEqual(['5170/tcp', '6050/udp', '8088/tcp', '9598/tcp']);
    const cfg = parseConfig(readFileSync(join(ROOT, 'deploy/docker/sluice.yaml'), 'utf8'), 'sluice.yaml', {});
    const src = cfg.sources as unknown as Record<string, { type: string; port: number; host: string }>;
    expect(`${src['talos_service']!.port}/${src['talos_service']!.type}`).toBe('5170/tcp');
    expect(`${src['talos_kernel']!.port}/${src['talos_kernel']!.type}`).toBe('6050/udp');
    const api = cfg.api as unknown as { port: number; host: string };
    expect(api.port).toBe(9598);
    for (const a of [src['talos_service']!, src['talos_kernel']!, api]) expect(a.host).toBe('0.0.0.0');
    expect(byKeyword(FINAL, 'HEALTHCHECK')[0]!.args).toContain(`http://127.0.0.1:${api.port}/healthz`);
  });

  it('.dockerignore keeps node_modules, .git, tests and docs out, and every workspace manifest in', () => {
    const ignored = dockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
    for (const p of [
      'node_modules/x',
      'packages/ring/node_modules/x',
      '.git/HEAD',
      'packages/ring/src/ring.test.ts',
      'test/e2e/x.test.ts',
      'bench/gate.ts',
      'docs/deploy.md',
      'README.md',
      'deploy/kubernetes/base/daemonset.yaml',
      'apps/loadgen/src/index.ts',
    ]) {
      expect(ignored(p), p).toBe(true);
    }
    expect(ignored('packages/sources/build/udp_recv.node'), 'a host build of the native UDP reader').toBe(true);
    expect(ignored('packages/worker/build-native/zstd.node'), 'a host build of the worker addons').toBe(true);
    for (const p of [
      'package.json',
      'package-lock.json',
      'bench/package.json',
      'test/package.json',
      'apps/loadgen/package.json',
      'packages/ring/src/ring.ts',
      'apps/sluice/bin/sluice.js',
      'deploy/docker/sluice.yaml',
      'scripts/build-native.ts',
      'packages/sources/native/udp_recv.cc',
      'packages/worker/native/zstd.cc',
    ]) {
      expect(ignored(p), p).toBe(false);
    }
    // Every workspace of the root package.json has its manifest in the context (npm ci needs them all).
    const files = contextFiles(ROOT);
    const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] })
      .workspaces;
    for (const w of workspaces) {
      const dirs = w.endsWith('/*')
        ? readdirSync(join(ROOT, w.slice(0, -2))).map((d) => `${w.slice(0, -2)}/${d}`)
        : [w];
      for (const d of dirs.filter((x) => existsSync(join(ROOT, x, 'package.json'))))
        expect(files).toContain(`${d}/package.json`);
    }
  });
});

describe('Dockerfile, replayed without Docker (the deps stage runs npm ci for real)', () => {
  let imageRoot = '';
  let app = '';
  const out = mkdtempSync(join(tmpdir(), 'sluice-image-'));
  afterAll(() => rmSync(out, { recursive: true, force: true })); // ~40 MB of node_modules
  beforeAll(() => {
    // A clean npm environment: under `npm test`, npm exports npm_config_* of this repository
    // (local_prefix=/work/main among them), which must not steer the install in the temp dir.
    const keep = new Set(['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig', 'npm_config_cafile']);
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || keep.has(k.toLowerCase())),
    );
    // prefer-offline: the npm cache of this machine serves what it has; the registry the rest.
    ({ imageRoot } = replayBuild(ROOT, out, {
      ...env,
      npm_config_prefer_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
    }));
    app = join(imageRoot, 'app');
  }, 300_000);

  it('node_modules holds the runtime dependencies and no dev dependency (no `node` package: the image has its own)', () => {
    const nm = join(app, 'node_modules');
    for (const dep of ['pino', 'piscina', 'prom-client', 'yaml', '@aws-sdk/client-s3']) {
      expect(existsSync(join(nm, dep)), dep).toBe(true);
    }
    for (const dev of [
      'node',
      'vitest',
      'typescript',
      'turbo',
      'tinybench',
      'bun',
      'kubernetes-models',
      'dockerfile-utils',
      '@types/node',
      '@sluice/loadgen',
      '@sluice/tests',
    ]) {
      expect(existsSync(join(nm, dev)), dev).toBe(false);
    }
    // Workspaces are links into packages/, which the final stage fills with their sources.
    expect(lstatSync(join(nm, '@sluice/ring')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(nm, '@sluice/ring'))).toBe('../../packages/ring');
    expect(existsSync(join(app, 'packages/ring/src/index.ts'))).toBe(true);
  });

  it('the image holds no tests, benches or docs', () => {
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.name === 'node_modules' ? [] : e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)],
      );
    const files = walk(app).map((f) => f.slice(app.length + 1));
    expect(
      files.filter(
        (f) =>
          f.endsWith('.test.ts') ||
          f.endsWith('.md') ||
          ((f.startsWith('bench/') || f.startsWith('test/') || f.startsWith('apps/loadgen/')) &&
            !f.endsWith('/package.json')),
      ),
    ).toEqual([]);
    expect(files).toContain('apps/sluice/bin/sluice.js');
    expect(files).toContain('bench/package.json'); // workspace manifests: npm ci checks them against the lockfile
  });

  it('the image tree holds the native addons compiled by npm ci, and they load', () => {
    expect(existsSync(join(app, 'packages/sources/build/udp_recv.node'))).toBe(true);
    for (const addon of ['batch', 'zstd'])
      expect(existsSync(join(app, `packages/worker/build-native/${addon}.node`)), addon).toBe(true);
    // The portable batch build is for the tests (scripts/build-native.ts testOnly): not in the image.
    expect(existsSync(join(app, 'packages/worker/build-native/batch-scalar.node'))).toBe(false);
    for (const [file, loader] of [
      ['zstd-native.ts', 'loadNativeZstd'],
      ['batch-native.ts', 'loadNativeBatch'],
    ] as const) {
      const probe = `import { ${loader} } from ${JSON.stringify(join(app, 'packages/worker/src', file))}; const r = ${loader}(); console.log(JSON.stringify({ ok: r.ok, reason: r.ok ? '' : r.reason }));`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '' },
      });
      expect(r.stderr, file).toBe('');
      expect(JSON.parse(r.stdout), file).toEqual({ ok: true, reason: '' });
    }
    const probe = `import { loadNativeUdp } from ${JSON.stringify(join(app, 'packages/sources/src/udp/native.ts'))}; const r = loadNativeUdp(); console.log(JSON.stringify({ ok: r.ok, reason: r.ok ? '' : r.reason }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '' },
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, reason: '' });
  });

  it("the image tree holds the worker threads' type-stripped modules, current with its sources", () => {
    expect(existsSync(join(app, 'packages/worker/build/manifest.json'))).toBe(true);
    const probe = `import { workerEntry } from ${JSON.stringify(join(app, 'packages/worker/src/entry.ts'))}; console.log(JSON.stringify(workerEntry('task')));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '' },
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      href: pathToFileURL(join(app, 'packages/worker/build/task.js')).href,
      built: true,
    });
  });

  it('`sluice validate` of the image config runs from the image tree', () => {
    const r = spawnSync(
      process.execPath,
      [join(app, 'apps/sluice/bin/sluice.js'), 'validate', '--config', join(imageRoot, 'etc/sluice/sluice.yaml')],
      { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' } },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  const canUnshare = spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;
  const hasTini = existsSync('/usr/bin/tini');
  for (const mode of ['tini', 'node'] as const) {
    const ready = canUnshare && (mode === 'node' || hasTini);
    const why = !canUnshare
      ? ' (NOT RUN: unshare --pid is not permitted here)'
      : !ready
        ? ' (NOT RUN: /usr/bin/tini is not installed here: apt-get install tini)'
        : '';
    // In CI a component that cannot start fails the test (the test setup installs tini with Ceph).
    it.skipIf(!ready && process.env['CI'] !== 'true')(
      `${mode === 'tini' ? 'the image ENTRYPOINT (tini as PID 1, node its child)' : 'node itself as PID 1 (docker run --entrypoint node)'}: SIGTERM from outside the namespace drains, exit 0, every line stored${why}`,
      async () => {
        if (!ready) throw new Error(`cannot run${why}`);
        const dir = mkdtempSync(join(tmpdir(), 'sluice-pid1-'));
        const out = join(dir, 'out');
        // The image config with free ports and a writable output directory.
        const cfg = readFileSync(join(imageRoot, 'etc/sluice/sluice.yaml'), 'utf8')
          .replace('0.0.0.0:5170', '127.0.0.1:0')
          .replace('0.0.0.0:6050', '127.0.0.1:0')
          .replace('0.0.0.0:9598', '127.0.0.1:0')
          .replaceAll('/var/lib/sluice', dir);
        writeFileSync(join(dir, 'sluice.yaml'), cfg);
        const entry = [...json(FINAL, 'ENTRYPOINT'), ...json(FINAL, 'CMD')].map((a) =>
          a === '/etc/sluice/sluice.yaml'
            ? join(dir, 'sluice.yaml')
            : a.startsWith('/app/')
              ? join(imageRoot, a)
              : a === 'node'
                ? process.execPath
                : a,
        );
        const argv = mode === 'tini' ? entry : entry.slice(2);
        const proc = spawn('unshare', ['--pid', '--fork', '--kill-child', ...argv], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
        const running = await new Promise<{ sources: Record<string, string[]> }>((resolve, reject) => {
          proc.stdout.on('data', (c: Buffer) => {
            stdout += c.toString();
            const m = /^.*"sluice is running".*$/m.exec(stdout);
            if (m !== null) resolve(JSON.parse(m[0]) as { sources: Record<string, string[]> });
          });
          void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
        });
        // PID 1 of the namespace, seen from here: the child of unshare.
        const pid1 = Number(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(' ')[0]);
        expect(readFileSync(`/proc/${pid1}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
        expect(readFileSync(`/proc/${pid1}/cmdline`, 'utf8').split('\0')[0]).toBe(
          mode === 'tini' ? '/usr/bin/tini' : process.execPath,
        );

        const lines = Array.from({ length: 5000 }, (_, i) =>
          JSON.stringify({
            msg: `line ${i}`,
            'talos-level': 'info',
            'talos-service': 'machined',
            'talos-time': '2026-11-22T10:00:00Z',
          }),
        );
        const [host, port] = running.sources['talos_service']![0]!.split(':');
        const sock = connect({ host: host!, port: Number(port) });
        await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
        await new Promise<void>((resolve) => {
          sock.once('close', () => resolve());
          sock.end(`${lines.join('\n')}\n`);
        });
        process.kill(pid1, 'SIGTERM'); // what the kubelet / docker stop do: from the parent namespace
        expect(await exited).toBe(0);
        expect(stdout).toMatch(/"signal":"SIGTERM","msg":"signal received: draining"/);
        const got: string[] = [];
        for (const key of listObjects(out))
          for (const l of await readObjectLines(join(out, key))) got.push((JSON.parse(l) as { msg: string }).msg);
        expect(got.sort()).toEqual(lines.map((l) => (JSON.parse(l) as { msg: string }).msg).sort());
      },
    );
  }
});
