import { resolve as resolvePath } from 'node:path';
import { SluiceError, type SinkConfig, type SluiceConfig } from '@sluice/config';
import { FileStore, s3StoreFromConfig, S3Store, type DiskHooks, type ObjectStore, type ObjectStoreCheck, type S3StoreHooks } from '@sluice/sinks';
import type { Logger } from '@sluice/telemetry';

/** The store behind a sink: where an object's bytes go. Everything else is the shared ObjectWriter.
 *  `hooks` see every retry and request of an aws_s3 sink, `diskHooks` every refused disk write
 *  of a file sink (observability.ts). */
export function buildSinkStore(sink: SinkConfig, logger?: Logger, hooks?: S3StoreHooks, diskHooks?: DiskHooks): ObjectStore {
  switch (sink.type) {
    case 'file':
      return diskHooks === undefined ? new FileStore({ path: resolvePath(sink.path) }) : new FileStore({ path: resolvePath(sink.path), diskHooks });
    case 'aws_s3':
      return s3StoreFromConfig(sink, logger, hooks);
  }
}

/** Let go of what a store holds open (an S3 client's keep-alive sockets). */
export function releaseStore(store: ObjectStore): void {
  if (store instanceof S3Store) store.client.destroy();
}

/** The result of one sink's check(). */
export interface SinkCheckResult {
  id: string;
  type: string;
  /** Names the sink (`sink <id>: ...`); never holds a secret (the stores redact their messages). */
  error: SluiceError | null;
  report: ObjectStoreCheck | null;
}

/**
 * check() every store at once: a missing bucket, refused credentials or an unwritable
 * directory is reported per sink, the sink named in the message.
 */
export async function checkStores(stores: readonly { id: string; type: string; store: ObjectStore }[]): Promise<SinkCheckResult[]> {
  return Promise.all(
    stores.map(async ({ id, type, store }): Promise<SinkCheckResult> => {
      try {
        const report = await store.check();
        return { id, type, error: null, report: report ?? null };
      } catch (err) {
        return { id, type, error: namingSink(id, err), report: null };
      }
    }),
  );
}

/** A check error whose message starts `sink <id>: ` (the S3 store's do; the file store's do not). */
function namingSink(id: string, err: unknown): SluiceError {
  const prefix = `sink ${id}: `;
  if (err instanceof SluiceError) {
    return err.message.startsWith(prefix) ? err : new SluiceError(err.code, prefix + err.message, { cause: err });
  }
  return new SluiceError('SLUICE_ERR_SINK_CHECK', `${prefix}${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** Every sink that failed its check, one line each (`sink <id>: ... (CODE)`). */
export class SinkCheckError extends SluiceError {
  readonly failures: readonly SluiceError[];

  constructor(failures: readonly SluiceError[]) {
    super(failures[0]?.code ?? 'SLUICE_ERR_SINK_CHECK', failures.map((f) => `${f.message} (${f.code})`).join('\n'));
    this.name = 'SinkCheckError';
    this.failures = failures;
  }
}

/** Every sink's store (and the dead-letter directory) for `sluice validate --check-connectivity`. */
export function storesOf(config: SluiceConfig): { id: string; type: string; store: ObjectStore }[] {
  const out = Object.values(config.sinks).map((sink) => ({ id: sink.id, type: sink.type, store: buildSinkStore(sink) }));
  if (config.dead_letter !== null) out.push({ id: 'dead_letter', type: 'file', store: new FileStore({ path: resolvePath(config.dead_letter.path) }) });
  return out;
}
