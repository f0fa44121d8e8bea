import { SluiceError, type SluiceConfig, type SourceConfig } from '@sluice/config';
import { Ring } from '@sluice/ring';
import { ERR_BIND, ERR_SHUTDOWN_TIMEOUT } from '@sluice/schema';
import { DiskStall, ObjectWriter, type ObjectStore, type ObjectWriterOptions } from '@sluice/sinks';
import { deadLetterSink, sinkDefinition } from '@sluice/sinks/registry';
import type { Source, SourceContext } from '@sluice/sources';
import { sourceDefinition } from '@sluice/sources/registry';
import { DiskMetrics, Metrics, SpoolMetrics, startApiServer, type Logger } from '@sluice/telemetry';
import {
  createHecDecoder,
  createWorkerPool,
  DEFAULT_LEVELS,
  indexFieldsFor,
  loadNativeBatch,
  loadNativeZstd,
  type Codec,
  type HecDecoder,
  type WorkerPool,
} from '@sluice/worker';
import { Dispatcher, type Route, type WhenFull } from './pipeline/dispatcher.ts';
import { checkStores, SinkCheckError } from './sinks.ts';
import { diskHooks, initSeries, observePool, observeStores, observeWriter, storeHooks } from './observability.ts';
import { openSpool, recoverSpool, SpoolingWriter } from './spooling.ts';

export interface DaemonOptions {
  config: SluiceConfig;
  logger: Logger;
  version: string;
}

interface SinkRuntime {
  id: string;
  type: string;
  store: ObjectStore;
  writer: ObjectWriter;
  log: Logger;
  whenFull: WhenFull;
  /** How long close() may take at shutdown; null = only the daemon's deadline. */
  shutdownTimeoutSecs: number | null;
  /** Said after the keys of objects given up at shutdown (what a remote store may keep). */
  abandonedNote: string;
}

/** The end of a shutdown-timeout message: what stays in the spools, when anything does. */
function spooledNote(spooled: number): string {
  return spooled > 0
    ? `; ${spooled} records of unfinished objects stay in the spool, and the next start uploads them`
    : '';
}

/**
 * The running engine: sources → rings → dispatcher → worker pool → object writers → stores.
 * `start()` validates everything that can fail (sink stores, then binds) before accepting
 * a byte; `shutdown()` drains in order under one deadline. Sources and sinks are built through
 * their type's definition (the registries of @sluice/sources and @sluice/sinks): nothing here
 * names a component type.
 */

export class Daemon {
  readonly metrics: Metrics;
  /** Sinks waiting for their local disk (file objects, spools). */
  readonly diskMetrics: DiskMetrics;
  readonly sources = new Map<string, Source>();
  apiPort = 0;
  readonly #opts: DaemonOptions;
  readonly #log: Logger;
  readonly #sinks: SinkRuntime[] = [];
  readonly #rings = new Map<string, Ring>();
  #deadLetter: ObjectWriter | null = null;
  /** Sinks with `spool: true` (spooling.ts). */
  readonly #spooling: SpoolingWriter[] = [];
  #spoolMetrics: SpoolMetrics | null = null;
  #pool: WorkerPool | null = null;
  #hecDecoder: HecDecoder | null = null;
  #dispatcher: Dispatcher | null = null;
  /** Whether the worker threads run the native batch processor and zstd compressor (they fall back otherwise). */
  #workerNative = { batch: false, zstd: false };
  #api: { close(): Promise<void> } | null = null;
  #shuttingDown: Promise<void> | null = null;
  #phase = 'starting';

  /** The fields the workers index (facts.ts): the same list rebuilds a recovered object's index. */
  get #indexFields(): string[] {
    return indexFieldsFor(Object.values(this.#opts.config.sources).map((s) => s.host_key));
  }

  constructor(opts: DaemonOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.metrics = new Metrics(opts.version);
    this.diskMetrics = new DiskMetrics(this.metrics.registry);
  }

  /** Addresses each source bound, `host:port` (port 0 in the config resolved). */
  addresses(): Record<string, readonly string[]> {
    const out: Record<string, readonly string[]> = {};
    for (const [id, s] of this.sources) out[id] = s.addresses;
    return out;
  }

  async start(): Promise<void> {
    const cfg = this.#opts.config;

    // Sinks first: a sink that cannot write is an error before any port is bound. All are
    // checked at once (an unreachable endpoint takes the check's whole timeout), and every
    // failing sink is named.
    const built = await Promise.all(
      Object.entries(cfg.sinks).map(async ([id, sink]) => {
        const log = this.#log.child({ component_id: id, component_type: sink.type });
        const store = await sinkDefinition(sink).store(sink, {
          logger: log,
          hooks: storeHooks(this.metrics, id, sink.type, log),
          diskHooks: diskHooks(this.diskMetrics, id, sink.when_full, log),
        });
        // A store on a local disk can be blocked by it: its series exist from the start.
        if (store.blocked !== undefined) this.diskMetrics.init(id, 'object');
        return { id, type: sink.type, sink, log, store };
      }),
    );
    const checks = await checkStores(built);
    const failures = checks.flatMap((c) => (c.error === null ? [] : [c.error]));
    if (failures.length > 0) throw new SinkCheckError(failures);
    for (const [i, { id, type, sink, log, store }] of built.entries()) {
      const checked = checks[i]?.report;
      if (checked != null && checked.staleTempFiles > 0) {
        log.warn(
          { stale_temp_files: checked.staleTempFiles, example: checked.firstStaleTempFile },
          'partial objects from an earlier crash found; they are left in place for you to inspect or delete',
        );
      }
      const writer = sink.spool
        ? await this.#spoolingWriter(sink, store, log)
        : this.#makeWriter(
            id,
            type,
            store,
            sink.key_prefix,
            sink.compression,
            sink.upload_period_secs,
            sink.max_object_bytes,
          );
      const def = sinkDefinition(sink);
      this.#sinks.push({
        id,
        type,
        store,
        writer,
        log,
        whenFull: sink.when_full,
        shutdownTimeoutSecs: def.shutdownTimeoutSecs(sink),
        abandonedNote: def.abandonedNote,
      });
    }
    if (cfg.dead_letter !== null) {
      const store = deadLetterSink.store(
        cfg.dead_letter.path,
        diskHooks(this.diskMetrics, 'dead_letter', 'block', this.#log.child({ component_id: 'dead_letter' })),
      );
      await store.check();
      this.#deadLetter = this.#makeWriter(
        'dead_letter',
        deadLetterSink.type,
        store,
        cfg.dead_letter.key_prefix,
        'none',
        cfg.dead_letter.upload_period_secs,
        256 * 1024 * 1024,
      );
    }

    // One pool for every source: batches, not records, cross the thread boundary.
    const threads = cfg.workers.threads;
    const { codecs: codecsBySource, levels } = this.#planCodecs(cfg);
    const workerSources: Record<
      string,
      { extraTags: Record<string, string>; hostKey: string | null; deadLetter: boolean }
    > = {};
    for (const [id, src] of Object.entries(cfg.sources)) {
      workerSources[id] = {
        extraTags: { ...src.extra_tags },
        hostKey: src.host_key,
        deadLetter: this.#deadLetter !== null,
      };
    }
    this.#pool = createWorkerPool({
      threads,
      workerData: { sources: workerSources, levels, index: Object.values(cfg.sinks).some((s) => s.index) },
    });
    const pool = this.#pool;
    if (!pool.builtEntry)
      this.#log.info(
        'worker threads load the TypeScript sources (no current build; `node scripts/build-worker.ts` makes one, saving ~11 MiB per thread)',
      );
    // The worker threads load the same addon files; where they do not load, they fall back. Say so once.
    const nativeBatch = loadNativeBatch();
    const nativeZstd = loadNativeZstd();
    this.#workerNative = { batch: nativeBatch.ok, zstd: nativeZstd.ok };
    this.metrics.workerNative.set({ addon: 'batch' }, nativeBatch.ok ? 1 : 0);
    this.metrics.workerNative.set({ addon: 'zstd' }, nativeZstd.ok ? 1 : 0);
    if (!nativeBatch.ok) {
      this.#log.warn(
        { reason: nativeBatch.reason },
        'the native batch processor is not available: the worker threads validate and tag in TypeScript (~0.6 µs more CPU per line); npm ci compiles it with g++',
      );
    }
    if (!nativeZstd.ok && [...codecsBySource.values()].some((codecs) => codecs.includes('zstd'))) {
      this.#log.warn(
        { reason: nativeZstd.reason },
        "the native zstd compressor is not available: the worker threads compress with node:zlib's zstdCompressSync; npm ci compiles it with g++",
      );
    }
    this.#dispatcher = new Dispatcher({
      runner: pool,
      metrics: this.metrics,
      logger: this.#log.child({ component: 'dispatcher' }),
      batchBytes: cfg.workers.batch_bytes,
      batchTimeoutMs: cfg.workers.batch_timeout_ms,
      maxInflightPerRoute: Math.max(2, threads * 2),
    });
    observePool(this.metrics, pool, threads);

    // Sources last.
    for (const [id, src] of Object.entries(cfg.sources)) {
      const ring = Ring.create(src.ring_bytes);
      this.#rings.set(id, ring);
      this.metrics.ringCapacity.set({ component_id: id }, ring.capacity);
      const dispatcher = this.#dispatcher;
      const codecs = codecsBySource.get(id) ?? [];
      const outputs = this.#sinks
        .filter((s) => (cfg.sinks[s.id]?.inputs ?? []).includes(id))
        .map((s) => ({
          writer: s.writer,
          codecIndex: codecs.indexOf(cfg.sinks[s.id]!.compression),
          whenFull: s.whenFull,
          index: cfg.sinks[s.id]!.index,
          sinkLabels: { component_id: s.id, component_type: s.type },
        }));
      const route: Route = {
        sourceId: id,
        sourceType: src.type,
        ring,
        codecs,
        outputs,
        deadLetter: this.#deadLetter,
        onRingSpace: () => this.sources.get(id)?.ringSpace(),
      };
      dispatcher.addRoute(route);
      const ctx: SourceContext = {
        id,
        ring,
        metrics: this.metrics,
        logger: this.#log.child({ component_id: id, component_type: src.type }),
        wrote: () => dispatcher.wrote(id),
      };
      const source = await this.#startSource(ctx, src);
      this.sources.set(id, source);
    }
    this.metrics.probe('sluice_ring_used_bytes', () => {
      for (const [id, ring] of this.#rings) this.metrics.ringUsed.set({ component_id: id }, ring.usedBytes());
    });
    observeStores(this.metrics, this.#sinks);
    this.metrics.probe('sluice_ready', () => this.metrics.ready.set(this.readiness().ready ? 1 : 0));
    initSeries(this.metrics, cfg);

    if (cfg.api.enabled) {
      const api = await startApiServer({
        host: cfg.api.host,
        port: cfg.api.port,
        registry: this.metrics.registry,
        readiness: () => this.readiness(),
      });
      this.#api = api;
      this.apiPort = api.port;
    }
    this.#phase = 'running';
    this.#log.info(
      {
        sources: this.addresses(),
        sinks: this.#sinks.map((s) => s.id),
        api_port: this.apiPort,
        worker_threads: threads,
        worker_native: this.#workerNative,
      },
      'sluice is running',
    );
  }

  /** A sink with `spool: true`: upload what an earlier run left in its spool, then spool. */
  async #spoolingWriter(sink: SluiceConfig['sinks'][string], store: ObjectStore, log: Logger): Promise<ObjectWriter> {
    const cfg = this.#opts.config;
    this.#spoolMetrics ??= new SpoolMetrics(this.metrics.registry);
    const metrics = this.#spoolMetrics;
    const spool = openSpool(cfg.data_dir, sink);
    metrics.maxBytes.set({ component_id: sink.id }, sink.max_spool_bytes);
    const labels = { component_id: sink.id, component_type: sink.type };
    const indexing = sink.index
      ? {
          fields: this.#indexFields,
          written: () => this.metrics.indexesWritten.inc(labels),
          failed: () => this.metrics.indexFailures.inc(labels),
        }
      : undefined;
    const recovered = await recoverSpool(spool, store, sink.id, log, metrics, indexing);
    if (recovered.objects + recovered.failed + recovered.corruptSegments > 0)
      log.info({ ...recovered }, 'spool recovery done');
    const whenFull = sink.when_full;
    this.diskMetrics.init(sink.id, 'spool');
    const writer = this.#makeWriter(
      sink.id,
      sink.type,
      store,
      sink.key_prefix,
      sink.compression,
      sink.upload_period_secs,
      sink.max_object_bytes,
      (o) =>
        new SpoolingWriter({
          ...o,
          spool,
          whenFull,
          metrics,
          ...(sink.index ? { indexFields: this.#indexFields } : {}),
          log,
          disk: new DiskStall('spool', diskHooks(this.diskMetrics, sink.id, whenFull, log)),
          onDiscard: (records, reason) =>
            this.metrics.sinkDiscardedEvents.inc({ component_id: sink.id, component_type: sink.type, reason }, records),
        }),
    );
    this.#spooling.push(writer as SpoolingWriter);
    return writer;
  }

  /**
   * Each writer draws the unique part of its keys itself: sinks of one process may share a
   * store and prefix (a bucket, a directory), and their objects must not overwrite each other.
   */
  #makeWriter(
    id: string,
    type: string,
    store: ObjectStore,
    keyPrefix: string,
    codec: Codec,
    periodSecs: number,
    maxObjectBytes: number,
    create = (o: ObjectWriterOptions): ObjectWriter => new ObjectWriter(o),
  ): ObjectWriter {
    const writer = create({ sinkId: id, store, keyPrefix, codec, uploadPeriodSecs: periodSecs, maxObjectBytes });
    observeWriter(this.metrics, writer, id, type, this.#log.child({ component_id: id, component_type: type }));
    this.metrics.uploadPeriod.set({ component_id: id }, periodSecs);
    return writer;
  }

  /** Codecs each source needs (one frame per distinct codec of the sinks it feeds). */
  #planCodecs(cfg: SluiceConfig): { codecs: Map<string, Codec[]>; levels: { zstd: number; gzip: number } } {
    const codecs = new Map<string, Codec[]>();
    const levels = { ...DEFAULT_LEVELS };
    const seenLevel = new Map<Codec, number>();
    for (const [sinkId, sink] of Object.entries(cfg.sinks)) {
      const codec = sink.compression;
      const level = sink.compression_level;
      if (level !== null && (codec === 'zstd' || codec === 'gzip')) {
        const prior = seenLevel.get(codec);
        if (prior !== undefined && prior !== level) {
          this.#log.warn(
            { component_id: sinkId, compression: codec, level, used: prior },
            "sinks share one compression level per codec; using the first sink's",
          );
        } else {
          seenLevel.set(codec, level);
          levels[codec] = level;
        }
      }
      for (const input of sink.inputs) {
        const list = codecs.get(input) ?? [];
        if (!list.includes(codec)) list.push(codec);
        codecs.set(input, list);
      }
    }
    return { codecs, levels };
  }

  async #startSource(ctx: SourceContext, src: SourceConfig): Promise<Source> {
    // The HEC decoder's threads start with the first source that asks for them.
    const runtime = {
      hecDecoder: (): HecDecoder =>
        (this.#hecDecoder ??= createHecDecoder({ threads: this.#opts.config.workers.threads })),
    };
    try {
      return await sourceDefinition(src).start(ctx, src, runtime);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new SluiceError(
        ERR_BIND,
        `sources.${ctx.id}: cannot listen on ${src.address} (${src.type}): ${e.code ?? e.message}`,
        { cause: err },
      );
    }
  }

  /** SIGHUP: sources with TLS load their certificate and key again; a bad file keeps the old pair. */
  async reloadTls(): Promise<void> {
    for (const [id, s] of this.sources) {
      if (s.reloadTls === undefined) continue;
      try {
        await s.reloadTls();
        this.#log.info({ component_id: id }, 'tls certificate reloaded');
      } catch (err) {
        this.#log.error({ component_id: id, err }, 'tls reload failed; the current certificate stays in use');
      }
    }
  }

  readiness(): { ready: boolean; problems: Record<string, string> } {
    const problems: Record<string, string> = {};
    if (this.#phase !== 'running') problems['sluice'] = this.#phase;
    for (const [id, s] of this.sources) if (!s.ready()) problems[id] = 'not listening';
    return { ready: Object.keys(problems).length === 0, problems };
  }

  /**
   * Stop accepting, drain the rings and workers, complete every open object. Idempotent.
   * Rejects with an error naming the phase still running if the deadline passes.
   */
  shutdown(lingerMs = 250): Promise<void> {
    this.#shuttingDown ??= this.#drainAll(lingerMs);
    return this.#shuttingDown;
  }

  async #drainAll(lingerMs: number): Promise<void> {
    const secs = this.#opts.config.shutdown_timeout_secs;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const phase = this.#phase;
        // A counted loss, never a silent one: what is still in the rings and batches (and what
        // a source writes from now on), then whatever the writers still hold, is given up.
        let inRings = 0;
        for (const [id, lines] of this.#dispatcher?.abandon() ?? []) {
          if (lines === 0) continue;
          inRings += lines;
          this.#log.error(
            { component_id: id, records: lines },
            `shutdown_timeout_secs (${secs}) passed with ${lines} records of source ${id} not in an object yet; they are counted as discarded (reason shutdown_timeout)`,
          );
        }
        const gaveUp = { lost: 0, spooled: 0 };
        const add = (r: { lost: number; spooled: number }): void => {
          gaveUp.lost += r.lost;
          gaveUp.spooled += r.spooled;
        };
        for (const s of this.#sinks) add(this.#abandon(s, `shutdown_timeout_secs (${secs}) passed`));
        if (this.#deadLetter !== null)
          add(
            this.#abandon(
              {
                id: 'dead_letter',
                type: deadLetterSink.type,
                writer: this.#deadLetter,
                log: this.#log.child({ component_id: 'dead_letter' }),
                abandonedNote: '',
              },
              `shutdown_timeout_secs (${secs}) passed`,
            ),
          );
        reject(
          new SluiceError(
            ERR_SHUTDOWN_TIMEOUT,
            `shutdown_timeout_secs (${secs}) passed while ${phase}; ${inRings} records not in an object yet and ${gaveUp.lost} records in unfinished objects counted as discarded (reason shutdown_timeout)${spooledNote(gaveUp.spooled)}`,
          ),
        );
      }, secs * 1000);
    });
    try {
      await Promise.race([this.#drainSteps(lingerMs), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Complete a sink's objects. An aws_s3 sink gets its own shutdown_timeout_secs: on expiry its
   * unfinished objects are given up and counted. Resolves the records given up (lost, and kept
   * in the sink's spool for the next start).
   */
  async #closeSink(s: SinkRuntime): Promise<{ lost: number; spooled: number }> {
    const closing = s.writer.close();
    const secs = s.shutdownTimeoutSecs;
    if (secs === null) {
      await closing;
      return { lost: 0, spooled: 0 };
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = await Promise.race([
      closing.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, secs * 1000, true))),
    ]);
    clearTimeout(timer);
    return expired
      ? this.#abandon(s, `shutdown_timeout_secs (${secs}) of sink ${s.id} passed`)
      : { lost: 0, spooled: 0 };
  }

  /**
   * Give up a writer's unfinished objects: log them and count their records, as discarded
   * (reason shutdown_timeout) or, for what the sink's spool holds, as deferred to the next start.
   */
  #abandon(
    s: { id: string; type: string; writer: ObjectWriter; log: Logger; abandonedNote: string },
    why: string,
  ): { lost: number; spooled: number } {
    const left = s.writer.abandon();
    if (left.length === 0) return { lost: 0, spooled: 0 };
    const records = left.reduce((n, o) => n + o.records, 0);
    const spooled = left.reduce((n, o) => n + (o.spooled ?? 0), 0);
    const lost = records - spooled;
    if (lost > 0)
      this.metrics.sinkDiscardedEvents.inc(
        { component_id: s.id, component_type: s.type, reason: 'shutdown_timeout' },
        lost,
      );
    if (spooled > 0) this.#spoolMetrics?.deferredEvents.inc({ component_id: s.id }, spooled);
    const fate =
      spooled === 0
        ? `their ${records} records are counted as discarded (reason shutdown_timeout)`
        : `of their ${records} records, ${lost} are counted as discarded (reason shutdown_timeout) and ${spooled} stay in the spool: the next start uploads them`;
    s.log.error(
      { objects: left.map((o) => o.key), records, spooled },
      `${why} with ${left.length} object(s) unfinished; ${fate}${s.abandonedNote}`,
    );
    return { lost, spooled };
  }

  async #drainSteps(lingerMs: number): Promise<void> {
    // After a failed start this is only cleanup: the user was told why it did not start.
    const level = this.#phase === 'starting' ? 'debug' : 'info';
    this.#phase = 'draining sources';
    this.#log[level]('shutting down: no new connections; draining');
    await Promise.all([...this.sources.values()].map((s) => s.drain(lingerMs)));
    await this.#hecDecoder?.destroy();
    this.#phase = 'draining rings through the workers';
    await this.#dispatcher?.flush();
    this.#phase = `completing objects (${this.#sinks.map((s) => s.id).join(', ')})`;
    const gaveUp = await Promise.all(this.#sinks.map((s) => this.#closeSink(s)));
    await this.#deadLetter?.close();
    this.#phase = 'stopping worker threads';
    await this.#pool?.destroy();
    for (const w of this.#spooling) w.closeSpool();
    this.#phase = 'stopped';
    await this.#api?.close();
    const late = this.#sinks.filter((_, i) => gaveUp[i]!.lost + gaveUp[i]!.spooled > 0);
    if (late.length > 0) {
      const lost = gaveUp.reduce((a, b) => a + b.lost, 0);
      const spooled = gaveUp.reduce((a, b) => a + b.spooled, 0);
      throw new SluiceError(
        ERR_SHUTDOWN_TIMEOUT,
        `sink ${late.map((s) => s.id).join(', ')}: objects not completed within the sink's shutdown_timeout_secs; ` +
          `${lost} records counted as discarded (reason shutdown_timeout)${spooledNote(spooled)}`,
      );
    }
    this.#log[level]('shutdown complete');
  }
}
