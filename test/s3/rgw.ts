/**
 * A real S3 server for tests: a throwaway single-host Ceph cluster (one monitor, one memstore
 * OSD, one RADOS Gateway), all on 127.0.0.1, in a fresh temp dir, no systemd, no disk image.
 *
 *   startRgw()
 *     monmaptool --create, ceph-mon --mkfs        (offline, ~0.1 s)
 *     ceph-mon -f                                  mon on a free port, msgr2 only
 *     ceph osd new UUID                            registers osd.0 (auth none: no keyring)
 *     ceph-osd --mkfs, ceph-osd -f                 memstore: the objects live in RAM
 *     radosgw-admin user create                    creates the rgw pools and our S3 user
 *     radosgw -f                                   beast on a free port; ready when GET / answers
 *
 * This is what Ceph's src/vstart.sh does, reduced to what the gateway needs (no mgr). The
 * settings and why each matters are in docs/wire.md, "S3 and Ceph RGW"; bring-up
 * takes about 2 s. The binaries come from `scripts/ensure-ceph.sh`.
 *
 * Children run in the foreground (`-f`), are not detached, and are SIGKILLed on stop(), on
 * process 'exit', and (through `setpriv --pdeathsig KILL`) by the kernel if this process dies
 * without running its exit handlers, so a crashed test run leaves no daemons behind.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { waitUntil } from '@sluice/testkit';

/** What the global setup hands to test files: `inject('s3')`. */
export interface S3TestEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's shared Ceph RGW, started by test/s3/global-setup.ts. */
    s3: S3TestEnv;
  }
}

export interface StartRgwOptions {
  /** Give up bringing the cluster up after this long. Default 60 s (it takes ~2 s). */
  startTimeoutMs?: number;
  /** Parent of the cluster's temp dir. Default os.tmpdir(). */
  tmpRoot?: string;
  /** Region the S3 clients sign for. RGW accepts any. Default 'us-east-1'. */
  region?: string;
  /** Keep the temp dir (logs) after stop(); also set by SLUICE_KEEP_RGW=1. */
  keepDir?: boolean;
}

export interface Rgw extends S3TestEnv {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** The cluster's temp dir: ceph.conf, log/, run/. */
  dir: string;
  createBucket(name: string): Promise<void>;
  /** A fresh S3Client for this gateway, with the options Ceph needs (path style, no aws-chunked). */
  client(): S3Client;
  /** SIGKILL radosgw only (the cluster keeps running): an S3 outage for tests. */
  stopGateway(): Promise<void>;
  /** Start radosgw again on the same port; resolves once it answers HTTP. */
  startGateway(): Promise<void>;
  /** Kill every daemon and remove the temp dir. */
  stop(): Promise<void>;
  /** The last lines of every daemon log, for failure messages. */
  logTail(lines?: number): string;
}

const RGW_NAME = 'client.rgw.sluice';
const BIND_FAILURE = /Address already in use|unable to bind|failed to bind|EADDRINUSE/i;

// Everything this process started, so an exit handler can kill it whatever the tests did.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Starts a fresh cluster and gateway. Retries with new ports if one was taken meanwhile. */
export async function startRgw(opts: StartRgwOptions = {}): Promise<Rgw> {
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + startTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    const cluster = new Cluster(opts);
    try {
      await cluster.start(deadline);
      return cluster.handle();
    } catch (err) {
      const tail = cluster.logTail(40);
      await cluster.stop(true);
      // A free port picked by a port-0 listen can be taken by someone else before the daemon
      // binds it. That is the only failure worth another try.
      if (attempt < 3 && Date.now() < deadline && BIND_FAILURE.test(tail)) continue;
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(
        `Ceph RGW did not start within ${startTimeoutMs} ms (attempt ${attempt}): ${msg}\n` +
          `(is Ceph installed? run scripts/ensure-ceph.sh)\n--- daemon logs (tail) ---\n${tail}`,
        { cause: err },
      );
    }
  }
}

class Cluster {
  readonly dir: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly keepDir: boolean;
  monPort = 0;
  rgwPort = 0;
  mon: ChildProcess | undefined;
  osd: ChildProcess | undefined;
  rgw: ChildProcess | undefined;
  stopped = false;

  constructor(opts: StartRgwOptions) {
    hookExit();
    const root = opts.tmpRoot ?? tmpdir();
    sweepOrphanDirs(root);
    this.dir = mkdtempSync(join(root, 'sluice-rgw-'));
    this.keepDir = opts.keepDir ?? process.env.SLUICE_KEEP_RGW === '1';
    if (!this.keepDir) {
      liveDirs.add(this.dir);
      // Lets a later run remove this dir if we die by SIGKILL (sweepOrphanDirs).
      writeFileSync(join(this.dir, 'owner.pid'), String(process.pid));
    }
    this.region = opts.region ?? 'us-east-1';
    // Random per cluster: a leaked credential would open nothing, and tests can check that
    // error messages never contain it. 40 base64 chars, with '+' and '/', like AWS secrets.
    this.accessKeyId = `SLUICE${randomBytes(7).toString('hex').toUpperCase()}`;
    this.secretAccessKey = randomBytes(30).toString('base64');
  }

  get conf(): string {
    return join(this.dir, 'ceph.conf');
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.rgwPort}`;
  }

  async start(deadline: number): Promise<void> {
    const d = this.dir;
    for (const sub of ['mon/a', 'osd/0', 'log', 'run', 'rgw', 'crash']) mkdirSync(join(d, sub), { recursive: true });
    this.monPort = await freePort();
    this.rgwPort = await freePort();
    const fsid = randomUUID();
    writeFileSync(
      this.conf,
      `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${this.monPort}
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind retry count = 2
ms bind retry delay = 1
auth cluster required = none
auth service required = none
auth client required = none
# without this radosgw fails to authenticate to the monitor (-13) while radosgw-admin works
ms mon client mode = crc secure
# bring-up 13 s -> 2 s
paxos propose interval = 0.05
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon warn on pool no redundancy = false
# a nearly full CI disk must not stop the monitor: it only holds a few MB here
mon data avail warn = 2
mon data avail crit = 1
run dir = ${d}/run
crash dir = ${d}/crash
admin socket = ${d}/run/$name.asok
pid file = ${d}/run/$name.pid
log file = ${d}/log/$name.log
mon data = ${d}/mon/$id
osd data = ${d}/osd/$id
osd objectstore = memstore
# a cap, not an allocation: memstore uses RAM only for the bytes stored
memstore device bytes = 4294967296

[${RGW_NAME}]
rgw frontends = beast endpoint=127.0.0.1:${this.rgwPort}
rgw data = ${d}/rgw
# Without the metadata cache, radosgw neither watches nor notifies its control objects. With
# it, the first bucket created after stopGateway()/startGateway() waited for the killed
# gateway's watches to time out (osd_client_watch_timeout, 30 s; 4.4 s when set to 5).
rgw cache enabled = false
`,
    );

    await runTool(
      'monmaptool',
      ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${this.monPort}]`, join(d, 'monmap')],
      deadline,
    );
    await runTool('ceph-mon', ['-c', this.conf, '-i', 'a', '--mkfs', '--monmap', join(d, 'monmap')], deadline);
    this.mon = this.spawnDaemon('mon.a', 'ceph-mon', ['-c', this.conf, '-i', 'a', '-f']);

    const osdUuid = randomUUID();
    // The ceph CLI waits for the monitor to answer (up to --connect-timeout).
    const connectSecs = String(Math.max(1, Math.ceil((deadline - Date.now()) / 1000)));
    await this.whileAlive(
      runTool('ceph', ['-c', this.conf, '--connect-timeout', connectSecs, 'osd', 'new', osdUuid], deadline),
      [this.mon],
    );
    await runTool('ceph-osd', ['-c', this.conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid], deadline);
    this.osd = this.spawnDaemon('osd.0', 'ceph-osd', ['-c', this.conf, '-i', '0', '-f']);

    // Creates the rgw pools (so it waits for the OSD to be up) and the S3 user. On a loaded
    // machine it can give up before the new OSD answers ("failed reading realm info: ret -110
    // (110) Connection timed out", "couldn't init storage provider": nothing was created, seen
    // once in a CI run): try again while the deadline allows.
    for (;;) {
      try {
        await this.whileAlive(
          runTool(
            'radosgw-admin',
            [
              '-c',
              this.conf,
              'user',
              'create',
              '--uid=sluice',
              '--display-name=sluice',
              `--access-key=${this.accessKeyId}`,
              `--secret-key=${this.secretAccessKey}`,
            ],
            deadline,
            [this.secretAccessKey],
          ),
          [this.mon, this.osd],
        );
        break;
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        if (!/couldn't init storage provider/.test(msg) || Date.now() > deadline - 5000) throw err;
        await sleep(1000); // a back-off on purpose before trying again
      }
    }
    await this.startGateway(deadline);
  }

  /** Rejects as soon as one of `daemons` exits, so a crash does not wait for the deadline. */
  async whileAlive<T>(work: Promise<T>, daemons: (ChildProcess | undefined)[]): Promise<T> {
    let onExit: (() => void) | undefined;
    const died = new Promise<never>((_, reject) => {
      onExit = () => {
        const dead = daemons.find((c) => c !== undefined && (c.exitCode !== null || c.signalCode !== null));
        reject(
          new Error(
            `${dead?.spawnargs.slice(-5).join(' ') ?? 'a daemon'} exited (code ${dead?.exitCode}, signal ${dead?.signalCode})`,
          ),
        );
      };
      for (const c of daemons) {
        if (c === undefined) continue;
        if (c.exitCode !== null || c.signalCode !== null) return onExit();
        c.once('exit', onExit);
      }
    });
    died.catch(() => {});
    try {
      return await Promise.race([work, died]);
    } finally {
      for (const c of daemons) if (c !== undefined && onExit !== undefined) c.off('exit', onExit);
    }
  }

  spawnDaemon(logName: string, cmd: string, args: string[]): ChildProcess {
    const fd = openSync(join(this.dir, 'log', `${logName}.out`), 'a');
    // setpriv (util-linux, always on Debian) makes the kernel SIGKILL the daemon when we die,
    // even by SIGKILL, where no 'exit' handler runs.
    const argv = hasSetpriv() ? ['setpriv', '--pdeathsig', 'KILL', '--', cmd, ...args] : [cmd, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { cwd: this.dir, stdio: ['ignore', fd, fd], detached: false });
    closeSync(fd);
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    child.on('error', () => {}); // ENOENT etc. surface as 'exit' + the log tail
    return child;
  }

  async startGateway(deadline = Date.now() + 30_000): Promise<void> {
    if (this.stopped) throw new Error('startGateway(): the cluster was stopped');
    if (this.rgw !== undefined && this.rgw.exitCode === null && this.rgw.signalCode === null) return;
    for (;;) {
      const rgw = this.spawnDaemon('rgw', 'radosgw', ['-c', this.conf, '-n', RGW_NAME, '-f']);
      this.rgw = rgw;
      try {
        await this.whileAlive(waitForGateway(this.rgwPort, deadline), [this.mon, this.osd, rgw]);
        return;
      } catch (err) {
        await killAndWait(rgw);
        // The same port after a restart: retry while something (TIME_WAIT, a stray client) holds it.
        if (Date.now() + 500 < deadline && BIND_FAILURE.test(this.logTail(5, 'rgw'))) {
          await sleep(250);
          continue;
        }
        throw err;
      }
    }
  }

  async stopGateway(): Promise<void> {
    if (this.rgw !== undefined) await killAndWait(this.rgw);
  }

  async stop(quiet = false): Promise<void> {
    this.stopped = true;
    // SIGKILL: the data is throwaway, and memstore would otherwise write it all to disk.
    await Promise.all([this.rgw, this.osd, this.mon].map((c) => (c === undefined ? undefined : killAndWait(c))));
    if (!this.keepDir) {
      rmSync(this.dir, { recursive: true, force: true });
      liveDirs.delete(this.dir);
    } else if (!quiet) {
      process.stderr.write(`rgw: kept ${this.dir}\n`);
    }
  }

  logTail(lines = 20, only?: string): string {
    const logDir = join(this.dir, 'log');
    if (!existsSync(logDir)) return '(no logs)';
    const out: string[] = [];
    for (const name of readdirSync(logDir).sort()) {
      if (only !== undefined && !name.includes(only)) continue;
      const text = readFileSync(join(logDir, name), 'utf8').trimEnd();
      if (text === '') continue;
      out.push(`== ${name}`, ...text.split('\n').slice(-lines));
    }
    return out.join('\n').replaceAll(this.secretAccessKey, '<secret>');
  }

  handle(): Rgw {
    const cfg = {
      endpoint: this.endpoint,
      region: this.region,
      accessKeyId: this.accessKeyId,
      secretAccessKey: this.secretAccessKey,
    };
    const client = () => rgwClient(cfg);
    return {
      ...cfg,
      dir: this.dir,
      client,
      createBucket: async (name) => {
        const c = client();
        try {
          await c.send(new CreateBucketCommand({ Bucket: name }));
        } finally {
          c.destroy();
        }
      },
      stopGateway: () => this.stopGateway(),
      startGateway: () => this.startGateway(),
      stop: () => this.stop(),
      logTail: (lines) => this.logTail(lines),
    };
  }
}

/** An S3Client with the options Ceph RGW needs (docs/wire.md, "S3 and Ceph RGW"). */
export function rgwClient(cfg: S3TestEnv): S3Client {
  return new S3Client({
    endpoint: cfg.endpoint,
    region: cfg.region,
    credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
    forcePathStyle: true,
    // With the SDK defaults a streamed PutObject goes out aws-chunked and Ceph answers 411.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/**
 * Removes the dirs of clusters whose test process died by SIGKILL (its daemons died with it,
 * through pdeathsig, but no 'exit' handler ran to remove the dir).
 */
function sweepOrphanDirs(root: string): void {
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith('sluice-rgw-'));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(root, name);
    let pid: number;
    try {
      pid = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(pid) || pid <= 0 || pidAlive(pid)) continue;
    rmSync(dir, { recursive: true, force: true });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let setprivCache: boolean | undefined;
function hasSetpriv(): boolean {
  setprivCache ??= ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
  return setprivCache;
}

/** A port that was free a moment ago (listen on 0, read it, close). Callers retry on a race. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function runTool(cmd: string, args: string[], deadline: number, redact: string[] = []): Promise<string> {
  const timeout = Math.max(1000, deadline - Date.now());
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      let msg = `${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`.trim();
      for (const s of redact) msg = msg.replaceAll(s, '<secret>');
      reject(new Error(msg));
    });
  });
}

/** Resolves when GET / on the port answers like RGW does (a ListAllMyBucketsResult). */
async function waitForGateway(port: number, deadline: number): Promise<void> {
  let last = 'no answer yet';
  const answers = async (): Promise<boolean> => {
    try {
      const body = await httpGet(port, 1000);
      if (body.includes('ListAllMyBucketsResult')) return true;
      last = `unexpected answer: ${body.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err); // not up yet: look again
    }
    return false;
  };
  const timeoutMs = Math.max(0, deadline - Date.now());
  await waitUntil(`radosgw on 127.0.0.1:${port}`, answers, timeoutMs, 50).catch((err: Error) => {
    throw new Error(`radosgw did not answer on 127.0.0.1:${port} (${last})`, { cause: err });
  });
}

function httpGet(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/', method: 'GET', timeout: timeoutMs, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
