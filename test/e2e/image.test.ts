/**
 * The container image, built by `npm run image` (scripts/image.sh, buildah) and run the way a
 * container runtime runs it: its own entrypoint, command, user and default config, read from the
 * image's config, with tini as PID 1 of a new PID namespace.
 *
 * buildah's chroot isolation gives a RUN no PID namespace and keeps the host's network: the
 * command runs as root with CAP_SYS_ADMIN only long enough for unshare to make the PID namespace
 * (and its /proc), then setpriv drops to the image's user with no capabilities left and execs the
 * entrypoint, so tini is PID 1 there. Ports are the host's: the default config's fixed ports
 * must be free (checked first), the second run mounts a config over /etc/sluice (as Kubernetes
 * does) that listens on port 0. `buildah run` does not forward SIGTERM (it kills its child), so
 * the test signals tini itself, as a runtime's stop does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  listObjects,
  metricSum,
  readObjectLines,
  scrape,
  sendTcpLines,
  splitAddress,
  tempDir,
} from '../helpers/daemon.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const BUILDAH = ['buildah', '--storage-driver', 'vfs'];
const DEFAULT_PORTS = { tcp: 5170, udp: 6050, api: 9598 };

interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  user: string;
  healthcheck: string[];
}

let image = '';
let config: ImageConfig;
const containers: string[] = [];
const running = new Set<ChildProcess>();

function buildah(args: string[]): string {
  const r = spawnSync(BUILDAH[0]!, [...BUILDAH.slice(1), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`buildah ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Builds the image (a no-op but for buildah's layer cache when nothing changed). */
function buildImage(): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('bash', [join(ROOT, 'scripts/image.sh')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code === 0) resolve(out.trim().split('\n').at(-1)!);
      else reject(new Error(`npm run image failed (exit ${code}):\n${err.slice(-6000)}`));
    });
  });
}

/** Fails with a clear message when a fixed port of the default config is taken on this host. */
async function assertFree(): Promise<void> {
  const tcp = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer();
      s.once('error', (e) =>
        reject(
          new Error(`port ${port}/tcp is in use on this host; the image's default config listens there (${e.message})`),
        ),
      );
      s.listen(port, '0.0.0.0', () => s.close(() => resolve()));
    });
  await tcp(DEFAULT_PORTS.tcp);
  await tcp(DEFAULT_PORTS.api);
  await new Promise<void>((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', (e) =>
      reject(
        new Error(
          `port ${DEFAULT_PORTS.udp}/udp is in use on this host; the image's default config listens there (${e.message})`,
        ),
      ),
    );
    s.bind(DEFAULT_PORTS.udp, '0.0.0.0', () => s.close(() => resolve()));
  });
}

/** Host pids of every descendant of `pid`. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

function statusField(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return line === undefined ? '' : line.slice(field.length + 1).trim();
}

interface Container {
  name: string;
  proc: ChildProcess;
  /** tini's pid on the host. */
  initPid: number;
  /** The daemon's "sluice is running" record. */
  running: Record<string, unknown>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** A working container of the image, running its entrypoint + command, with host dirs mounted. */
async function runImage(volumes: string[]): Promise<Container> {
  const name = buildah(['from', '--quiet', image]);
  containers.push(name);
  const [uid, gid] = config.user.split(':');
  const argv = [
    ...BUILDAH.slice(1),
    'run',
    '--isolation',
    'chroot',
    '--user',
    '0:0',
    '--cap-add',
    'CAP_SYS_ADMIN',
    ...volumes.flatMap((v) => ['--volume', v]),
    name,
    '--',
    'unshare',
    '--pid',
    '--fork',
    '--mount-proc',
    '--kill-child',
    'setpriv',
    '--reuid',
    uid!,
    '--regid',
    gid ?? uid!,
    '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--',
    ...config.entrypoint,
    ...config.cmd,
  ];
  const proc = spawn(BUILDAH[0]!, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );
  let done = false;
  void exited.then(() => (done = true));
  let rec: Record<string, unknown> | undefined;
  await vi.waitFor(
    () => {
      if (done) throw new Error(`the container exited before sluice was running\n${out}\n${err}`);
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        const r = JSON.parse(line) as Record<string, unknown>;
        if (r['msg'] === 'sluice is running') rec = r;
      }
      expect(rec, 'sluice is running').toBeDefined();
    },
    { timeout: 60_000, interval: 200 },
  );
  const init = descendants(proc.pid!).find((p) => cmdline(p)[0] === config.entrypoint[0]);
  if (init === undefined) throw new Error(`no ${config.entrypoint[0]} process under buildah run`);
  return { name, proc, initPid: init, running: rec!, stdout: () => out, stderr: () => err, exited };
}

/** A host dir the image's user can write, for /var/lib/sluice/out. */
function outDir(): string {
  const dir = join(tempDir('sluice-image-'), 'out');
  mkdirSync(dir);
  const [uid, gid] = config.user.split(':');
  chownSync(dir, Number(uid), Number(gid ?? uid));
  return dir;
}

async function allLines(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const key of listObjects(dir)) lines.push(...(await readObjectLines(join(dir, key))));
  return lines;
}

beforeAll(async () => {
  image = await buildImage();
  const info = JSON.parse(buildah(['inspect', '--type', 'image', image])) as {
    Docker: { config: { Entrypoint?: string[]; Cmd?: string[]; User?: string; Healthcheck?: { Test?: string[] } } };
  };
  const c = info.Docker.config;
  config = {
    entrypoint: c.Entrypoint ?? [],
    cmd: c.Cmd ?? [],
    user: c.User ?? '',
    healthcheck: c.Healthcheck?.Test ?? [],
  };
}, 15 * 60_000);

afterAll(() => {
  // A test that failed midway must not leave a daemon holding the default ports.
  for (const p of running) {
    for (const d of descendants(p.pid!)) {
      try {
        process.kill(d, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    p.kill('SIGKILL');
  }
  for (const name of containers) spawnSync(BUILDAH[0]!, [...BUILDAH.slice(1), 'rm', name], { stdio: 'ignore' });
});

describe('the container image (npm run image, run with buildah)', () => {
  it('is configured as the Dockerfile says: tini, the daemon, the default config, uid 10001, a healthcheck', () => {
    expect(image).toMatch(/^localhost\/sluice:\d+\.\d+\.\d+/);
    expect(config.entrypoint).toEqual(['/usr/bin/tini', '--', 'node', '/app/apps/sluice/bin/sluice.js']);
    expect(config.cmd).toEqual(['run', '--config', '/etc/sluice/sluice.yaml']);
    expect(config.user).toBe('10001:10001');
    expect(config.healthcheck[0]).toBe('CMD');
  });

  it('on its default config: tini is PID 1, the daemon runs as 10001, the healthcheck passes, a TCP line and a UDP datagram land in an object on SIGTERM, exit 0', {
    timeout: 180_000,
  }, async () => {
    await assertFree();
    const out = outDir();
    const c = await runImage([`${out}:/var/lib/sluice/out`]);

    // PID 1 of its namespace, the image's user, and Node its only child.
    expect(statusField(c.initPid, 'NSpid').split(/\s+/).at(-1)).toBe('1');
    expect(statusField(c.initPid, 'Uid').split(/\s+/)[0]).toBe('10001');
    const kids = descendants(c.initPid);
    expect(kids.length).toBe(1);
    expect(cmdline(kids[0]!)).toContain('/app/apps/sluice/bin/sluice.js');
    expect(statusField(kids[0]!, 'Uid').split(/\s+/)[0]).toBe('10001');
    expect(statusField(kids[0]!, 'Gid').split(/\s+/)[0]).toBe('10001');
    // The default config: every interface, the fixed ports, a file sink under /var/lib/sluice/out.
    expect(c.running['api_port']).toBe(DEFAULT_PORTS.api);
    expect(c.running['sources']).toEqual({
      talos_service: [`0.0.0.0:${DEFAULT_PORTS.tcp}`],
      talos_kernel: [`0.0.0.0:${DEFAULT_PORTS.udp}`],
    });
    expect(c.running['sinks']).toEqual(['local']);
    const inImage = spawnSync(
      BUILDAH[0]!,
      [...BUILDAH.slice(1), 'run', '--isolation', 'chroot', c.name, '--', 'cat', '/etc/sluice/sluice.yaml'],
      { encoding: 'utf8' },
    );
    expect(inImage.stdout).toBe(readFileSync(join(ROOT, 'deploy/docker/sluice.yaml'), 'utf8'));

    // The HEALTHCHECK command, run in the container as a runtime does.
    const hc = spawnSync(
      BUILDAH[0]!,
      [...BUILDAH.slice(1), 'run', '--isolation', 'chroot', c.name, '--', ...config.healthcheck.slice(1)],
      { encoding: 'utf8' },
    );
    expect(hc.status, hc.stderr).toBe(0);

    const tag = `image-${process.pid}-${Date.now()}`;
    await sendTcpLines(`127.0.0.1:${DEFAULT_PORTS.tcp}`, [
      JSON.stringify({
        msg: `tcp ${tag}`,
        'talos-service': 'kubelet',
        'talos-level': 'info',
        'talos-time': new Date().toISOString(),
      }),
    ]);
    const udp = createSocket('udp4');
    const datagram = JSON.stringify({
      msg: `udp ${tag}`,
      facility: 'kern',
      priority: 'info',
      seq: 1,
      clock: 1,
      'talos-time': new Date().toISOString(),
    });
    // UDP may lose a datagram on a loaded machine: send again until the daemon has counted one.
    await vi.waitFor(
      async () => {
        await new Promise<void>((resolve, reject) =>
          udp.send(datagram, DEFAULT_PORTS.udp, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
        );
        const m = await scrape(DEFAULT_PORTS.api);
        expect(
          metricSum(m, 'sluice_source_received_events_total', { component_id: 'talos_kernel' }),
        ).toBeGreaterThanOrEqual(1);
        expect(metricSum(m, 'sluice_source_received_events_total', { component_id: 'talos_service' })).toBe(1);
      },
      { timeout: 30_000, interval: 500 },
    );
    udp.close();
    // The default upload period is 60 s: nothing is in the sink yet, the drain on SIGTERM puts it there.
    expect(listObjects(out)).toEqual([]);

    process.kill(c.initPid, 'SIGTERM');
    expect(await c.exited, c.stderr()).toBe(0);
    const lines = await allLines(out);
    const tcpRec = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r['msg'] === `tcp ${tag}`);
    const udpRec = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r['msg'] === `udp ${tag}`);
    expect(tcpRec?.['__host']).toBe('127.0.0.1');
    expect(udpRec?.['__host']).toBe('127.0.0.1');
    for (const key of listObjects(out)) expect(key).toMatch(/^talos\/.*\.ndjson\.zst$/);
    expect(c.stdout()).toContain('"msg":"signal received: draining"');
    expect(c.stdout()).toContain('"msg":"shutdown complete"');

    // Nothing answers on the API port any more: the healthcheck fails.
    const after = spawnSync(
      BUILDAH[0]!,
      [...BUILDAH.slice(1), 'run', '--isolation', 'chroot', c.name, '--', ...config.healthcheck.slice(1)],
      { encoding: 'utf8' },
    );
    expect(after.status).not.toBe(0);
  });

  it('with a config mounted over /etc/sluice: a Splunk HEC event lands in an object', {
    timeout: 180_000,
  }, async () => {
    const out = outDir();
    const etc = tempDir('sluice-image-etc-');
    const token = `tok-${process.pid}`;
    writeFileSync(
      join(etc, 'sluice.yaml'),
      `
data_dir: /var/lib/sluice
api: { address: 127.0.0.1:0 }
workers: { threads: 1 }
sources:
  hec: { type: splunk_hec, address: 127.0.0.1:0, valid_tokens: [${token}] }
sinks:
  local: { type: file, inputs: [hec], path: /var/lib/sluice/out, compression: zstd, upload_period_secs: 1 }
`,
    );
    chmodSync(etc, 0o755);
    chmodSync(join(etc, 'sluice.yaml'), 0o644);
    const c = await runImage([`${out}:/var/lib/sluice/out`, `${etc}:/etc/sluice:ro`]);
    const hec = (c.running['sources'] as Record<string, string[]>)['hec']![0]!;
    const { host, port } = splitAddress(hec);
    const tag = `hec-${process.pid}-${Date.now()}`;
    const res = await fetch(`http://${host}:${port}/services/collector/event`, {
      method: 'POST',
      headers: { authorization: `Splunk ${token}` },
      body: JSON.stringify({ event: { msg: tag }, host: 'tailnet', sourcetype: 'tailscale' }),
    });
    expect(res.status).toBe(200);
    // The upload period is 1 s: the object lands while the daemon runs.
    await vi.waitFor(async () => expect((await allLines(out)).some((l) => l.includes(tag))).toBe(true), {
      timeout: 30_000,
      interval: 250,
    });
    process.kill(c.initPid, 'SIGTERM');
    expect(await c.exited, c.stderr()).toBe(0);
    const rec = (await allLines(out))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((r) => JSON.stringify(r).includes(tag));
    expect(rec?.['host']).toBe('tailnet');
  });
});
