import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { listObjects, metricSum, readObjectLines, scrape, startDaemon, tempDir } from '../helpers/daemon.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

const CONFIG = `
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:0 }
sinks:
  f: { type: file, inputs: [t], path: ./out }
`;

/** argv and environment of a running process, as the kernel has them. */
function procInfo(pid: number): { argv: string[]; env: Map<string, string> } {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '');
  const env = new Map(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
  );
  return { argv, env };
}

describe.runIf(process.platform === 'linux')('the sluice launcher (bin/sluice.js)', () => {
  it('`run` restarts itself in place (same pid) with a capped young generation and two malloc arenas', async () => {
    const env = { ...process.env } as Record<string, string>;
    delete env['MALLOC_ARENA_MAX'];
    delete env['MALLOC_MMAP_THRESHOLD_'];
    delete env['NODE_OPTIONS'];
    const d = await startDaemon(CONFIG, { launcher: true, env });
    try {
      const { argv, env: seen } = procInfo(d.proc.pid!);
      expect(argv).toContain('--max-semi-space-size=4');
      expect(argv.filter((a) => a.startsWith('--max-semi-space-size'))).toHaveLength(1);
      expect(argv.some((a) => a.endsWith('apps/sluice/bin/sluice.js'))).toBe(true);
      expect(seen.get('MALLOC_ARENA_MAX')).toBe('2');
      expect(seen.get('MALLOC_MMAP_THRESHOLD_')).toBe('262144');
    } finally {
      expect(await d.stop('SIGTERM')).toBe(0);
    }
  });

  it('leaves settings the operator chose alone', async () => {
    const env = { MALLOC_ARENA_MAX: '8', MALLOC_MMAP_THRESHOLD_: '131072', NODE_OPTIONS: '--max-semi-space-size=8' };
    const d = await startDaemon(CONFIG, { launcher: true, env });
    try {
      const { argv, env: seen } = procInfo(d.proc.pid!);
      expect(argv.some((a) => a.startsWith('--max-semi-space-size'))).toBe(false);
      expect(seen.get('MALLOC_ARENA_MAX')).toBe('8');
      expect(seen.get('MALLOC_MMAP_THRESHOLD_')).toBe('131072');
      expect(seen.get('NODE_OPTIONS')).toBe('--max-semi-space-size=8');
    } finally {
      expect(await d.stop('SIGTERM')).toBe(0);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The pid a supervisor starts must be the daemon: kill -9 of it (a supervisor, systemd with
// KillMode=process, the OOM killer) must take the ports and the spool with it.

/** The machine's Node, older than 24 on these machines (20 at /usr/bin/node): first on PATH. */
const OLD_NODE = '/usr/bin/node';
const OLD_PATH = `/usr/bin:/bin:${process.env['PATH'] ?? ''}`;
const SH_LAUNCHER = join(ROOT, 'apps/sluice/bin/sluice');
/** What `npm ci` links: node_modules/.bin/sluice → ../sluice/bin/sluice → apps/sluice/bin/sluice. */
const NPM_BIN = join(ROOT, 'node_modules/.bin/sluice');
const NODE24 = realpathSync(join(ROOT, 'node_modules/node/bin/node'));
const JS_LAUNCHER = join(ROOT, 'apps/sluice/bin/sluice.js');

/** A free port on 127.0.0.1 for `kind` (the kernel's pick, released at once). */
async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) => s.once('error', reject).bind(0, '127.0.0.1', resolve));
    const { port } = s.address();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return port;
  }
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Whether this process can bind `port` (then released): nothing else holds it. */
async function canBind(kind: 'tcp' | 'udp', port: number): Promise<boolean> {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) =>
      s.once('error', () => resolve(false)).bind(port, '127.0.0.1', () => resolve(true)),
    );
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return ok;
  }
  const srv = createServer();
  const ok = await new Promise<boolean>((resolve) =>
    srv.once('error', () => resolve(false)).listen(port, '127.0.0.1', () => resolve(true)),
  );
  if (ok) await new Promise<void>((resolve) => srv.close(() => resolve()));
  return ok;
}

/** Child processes of pid (not threads), from the kernel. */
function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

/** Whether pid is a live process (a zombie waiting to be reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Kill what a failing run left behind (the orphan this test is about), by pid. */
function killLeftovers(pids: number[]): void {
  for (const pid of pids) {
    try {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

function talosLine(msg: string): string {
  return JSON.stringify({
    msg,
    'talos-level': 'info',
    'talos-service': 'machined',
    'talos-time': '2026-11-22T10:00:00Z',
  });
}

async function sendTcp(port: number, lines: string[]): Promise<void> {
  const sock = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  for (let i = 0; i < lines.length; i += 1000) {
    if (!sock.write(`${lines.slice(i, i + 1000).join('\n')}\n`)) await new Promise((r) => sock.once('drain', r));
  }
  // Half-close and wait for the server's close: it has read every byte.
  await new Promise<void>((resolve, reject) => {
    sock.once('close', () => resolve()).once('error', reject);
    sock.end();
  });
}

/** 50 datagrams every 10 ms. */
async function sendUdp(port: number, lines: string[]): Promise<void> {
  const s = createSocket('udp4');
  for (let i = 0; i < lines.length; i += 50) {
    await Promise.all(
      lines
        .slice(i, i + 50)
        .map(
          (l) =>
            new Promise<void>((resolve, reject) =>
              s.send(l, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
            ),
        ),
    );
    await new Promise((r) => setTimeout(r, 10)); // a pause on purpose: paced, UDP has no backpressure
  }
  await new Promise<void>((resolve) => s.close(() => resolve()));
}

/** `msg` of every stored record under out (temp files of unfinished objects skipped). */
async function storedMessages(out: string): Promise<string[]> {
  const msgs: string[] = [];
  for (const key of listObjects(out)) {
    if (basename(key).startsWith('.')) continue;
    for (const l of await readObjectLines(join(out, key))) msgs.push((JSON.parse(l) as { msg: string }).msg);
  }
  return msgs;
}

/** How many times each value occurs. */
function tally(values: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

// In CI the machine's older Node is part of the test: missing, it is a failure, not a skip.
const runsHere = process.env['CI'] === 'true' || (process.platform === 'linux' && existsSync(OLD_NODE));
const oldVersion = existsSync(OLD_NODE)
  ? spawnSync(OLD_NODE, ['--version'], { encoding: 'utf8' }).stdout.trim()
  : 'none';

describe.runIf(runsHere)(
  `the sh launcher (bin/sluice) with the machine's Node (${oldVersion}, ${OLD_NODE}) first on PATH`,
  () => {
    it('`sluice --version` answers on Node 24, through node_modules/.bin/sluice and apps/sluice/bin/sluice', () => {
      for (const bin of [NPM_BIN, SH_LAUNCHER]) {
        const r = spawnSync(bin, ['--version'], {
          encoding: 'utf8',
          env: { ...process.env, PATH: OLD_PATH },
          timeout: 30_000,
        });
        expect(r.stderr, bin).toBe('');
        expect(r.status, bin).toBe(0);
        expect(r.stdout, bin).toMatch(/^sluice \d+\.\d+\.\d+ \(node 24\./);
      }
    });

    it('SLUICE_NODE chooses the Node; one that is not there is one line naming the option, exit 1', () => {
      const dir = tempDir('sluice-launcher-');
      const wrapper = join(dir, 'node24');
      writeFileSync(
        wrapper,
        `#!/bin/sh\necho "node chosen by SLUICE_NODE" >&2\nexec ${JSON.stringify(NODE24)} "$@"\n`,
        { mode: 0o755 },
      );
      const r = spawnSync(SH_LAUNCHER, ['--version'], {
        encoding: 'utf8',
        env: { ...process.env, PATH: OLD_PATH, SLUICE_NODE: wrapper },
        timeout: 30_000,
      });
      expect(r.status).toBe(0);
      expect(r.stderr).toBe('node chosen by SLUICE_NODE\n');
      expect(r.stdout).toMatch(/\(node 24\./);
      const bad = spawnSync(SH_LAUNCHER, ['--version'], {
        encoding: 'utf8',
        env: { ...process.env, PATH: OLD_PATH, SLUICE_NODE: join(dir, 'missing') },
        timeout: 30_000,
      });
      expect(bad.status).toBe(1);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toMatch(
        /^sluice: SLUICE_NODE=\S+missing is not an executable file; set it to a Node\.js 24 binary, or unset it\n$/,
      );
    });

    it('without a Node 24 anywhere: one line that says what to do, exit 1', () => {
      // A copy outside the repository (no node_modules/node above it), and on PATH only a `node`
      // that says it is 20 (and would fail the test if it were run on the CLI).
      const dir = tempDir('sluice-launcher-');
      const copy = join(dir, 'sluice');
      copyFileSync(SH_LAUNCHER, copy);
      chmodSync(copy, 0o755);
      const binDir = join(dir, 'path');
      mkdirSync(binDir);
      writeFileSync(
        join(binDir, 'node'),
        '#!/bin/sh\n[ "$1" = --version ] && echo v20.0.0 && exit 0\necho "ran: $*"; exit 3\n',
        { mode: 0o755 },
      );
      const r = spawnSync(copy, ['run'], { encoding: 'utf8', env: { PATH: binDir }, timeout: 30_000 });
      expect(r.stdout).toBe('');
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        `sluice: needs Node.js 24 and found none (no node_modules/node/bin/node above ${realpathSync(dir)}; node on PATH is v20.0.0 at ${binDir}/node): run npm ci, put Node 24 first on PATH, or set SLUICE_NODE\n`,
      );
    });

    it('the started pid is the Node 24 daemon; kill -9 of it frees the ports within 3 s; the restart recovers the spool (every spooled line stored exactly once) and drains on SIGTERM, exit 0', {
      timeout: 180_000,
    }, async () => {
      const dir = tempDir();
      const out = join(dir, 'out');
      const tcpPort = await freePort('tcp');
      const udpPort = await freePort('udp');
      // upload_period_secs 3600: the object stays open, so at the kill its records are only in
      // the spool (and the object's temp file); the restart must bring them back from the spool.
      const config = `
data_dir: ${dir}/data
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:${tcpPort} }
  u: { type: udp, address: 127.0.0.1:${udpPort} }
sinks:
  f: { type: file, inputs: [t, u], path: ${out}, upload_period_secs: 3600, spool: true }
`;
      const env = { PATH: OLD_PATH };
      const leftovers: number[] = [];
      try {
        const first = await startDaemon(config, { dir, env, command: [NPM_BIN] });
        const pid = first.proc.pid!;
        leftovers.push(pid, ...childrenOf(pid));
        // The pid that was started is Node 24 running sluice.js with the runtime settings, and
        // it has no child process that could outlive it.
        expect(realpathSync(`/proc/${pid}/exe`)).toBe(NODE24);
        const { argv, env: seen } = procInfo(pid);
        expect(argv).toContain('--max-semi-space-size=4');
        expect(argv.some((a) => a.endsWith('apps/sluice/bin/sluice.js'))).toBe(true);
        expect(seen.get('MALLOC_ARENA_MAX')).toBe('2');
        expect(seen.get('MALLOC_MMAP_THRESHOLD_')).toBe('262144');
        expect(childrenOf(pid)).toEqual([]);

        const TCP_LINES = 20_000;
        const UDP_LINES = 500;
        await sendTcp(
          tcpPort,
          Array.from({ length: TCP_LINES }, (_, i) => talosLine(`tcp ${i}`)),
        );
        await sendUdp(
          udpPort,
          Array.from({ length: UDP_LINES }, (_, i) => talosLine(`udp ${i}`)),
        );
        // Every TCP line read, and everything read so far appended to the spool.
        let appendedAtKill = 0;
        await vi.waitFor(
          async () => {
            const m = await scrape(first.apiPort);
            const received = metricSum(m, 'sluice_source_received_events_total');
            appendedAtKill = metricSum(m, 'sluice_spool_appended_events_total');
            expect(metricSum(m, 'sluice_source_received_events_total', { component_id: 't' })).toBe(TCP_LINES);
            expect(appendedAtKill).toBe(received);
          },
          { timeout: 60_000, interval: 100 },
        );
        expect(appendedAtKill).toBeGreaterThanOrEqual(TCP_LINES);

        expect(await first.stop('SIGKILL')).toBeNull();
        // Nothing holds the ports any more: a restart can bind them.
        await vi.waitFor(
          async () => {
            expect(await canBind('tcp', tcpPort)).toBe(true);
            expect(await canBind('udp', udpPort)).toBe(true);
          },
          { timeout: 3_000, interval: 50 },
        );
        expect(readdirSync(join(dir, 'data/spool/f')).filter((n) => n.endsWith('.seg')).length).toBeGreaterThan(0);

        // Same launcher, same data_dir: the spool is uploaded before the sources bind.
        const again = await startDaemon(config, { dir, env, command: [NPM_BIN] });
        leftovers.push(again.proc.pid!);
        const m = await scrape(again.apiPort);
        const recovered = metricSum(m, 'sluice_spool_recovered_events_total', { component_id: 'f' });
        expect(again.logs.some((l) => l['msg'] === 'recovered an unfinished object from the spool')).toBe(true);
        // The kill can only have added records read after the last scrape.
        expect(recovered).toBeGreaterThanOrEqual(appendedAtKill);
        // SIGTERM to the started pid drains: lines sent to the restarted daemon land too.
        const AFTER = 5_000;
        await sendTcp(
          tcpPort,
          Array.from({ length: AFTER }, (_, i) => talosLine(`after ${i}`)),
        );
        expect(await again.stop('SIGTERM')).toBe(0);
        expect(again.logs.some((l) => l['msg'] === 'shutdown complete')).toBe(true);
        expect(readdirSync(join(dir, 'data/spool/f'))).toEqual([]);

        console.log(JSON.stringify({ appendedAtKill, recovered, tcp: TCP_LINES, udpSent: UDP_LINES, after: AFTER }));
        const counts = tally(await storedMessages(out));
        const dup = [...counts].filter(([, n]) => n > 1).map(([k]) => k);
        expect(dup).toEqual([]);
        for (let i = 0; i < TCP_LINES; i++) expect(counts.get(`tcp ${i}`), `tcp ${i}`).toBe(1);
        for (let i = 0; i < AFTER; i++) expect(counts.get(`after ${i}`), `after ${i}`).toBe(1);
        const udp = [...counts.keys()].filter((k) => k.startsWith('udp '));
        // Exactly what was in the spool at the kill: the TCP lines and the datagrams read.
        expect(udp.length).toBe(recovered - TCP_LINES);
        expect(counts.size).toBe(TCP_LINES + udp.length + AFTER);
      } finally {
        killLeftovers(leftovers);
      }
    });
  },
);

describe.runIf(runsHere)('bin/sluice.js started directly by an older Node', () => {
  it('kill -9 of that Node: its Node 24 child drains and exits, and the ports are free', {
    timeout: 120_000,
  }, async () => {
    const tcpPort = await freePort('tcp');
    const config = `
api: { address: 127.0.0.1:0 }
sources:
  t: { type: tcp, address: 127.0.0.1:${tcpPort} }
sinks:
  f: { type: file, inputs: [t], path: ./out }
`;
    const d = await startDaemon(config, { env: { PATH: OLD_PATH }, command: [OLD_NODE, JS_LAUNCHER] });
    const children = childrenOf(d.proc.pid!);
    const leftovers = [d.proc.pid!, ...children];
    try {
      expect(children).toHaveLength(1);
      expect(realpathSync(`/proc/${children[0]}/exe`)).toBe(NODE24);
      expect(await d.stop('SIGKILL')).toBeNull();
      await vi.waitFor(() => expect(alive(children[0]!)).toBe(false), { timeout: 60_000, interval: 100 });
      expect(await canBind('tcp', tcpPort)).toBe(true);
      // Its log (the pipe it shares with the killed parent) shows a drain, not a crash.
      await vi.waitFor(() => expect(d.logs.some((l) => l['msg'] === 'shutdown complete')).toBe(true), {
        timeout: 10_000,
        interval: 50,
      });
      expect(d.stderr()).toMatch(/sluice: the launching process \(pid \d+\) is gone; draining/);
    } finally {
      killLeftovers(leftovers);
    }
  });
});
