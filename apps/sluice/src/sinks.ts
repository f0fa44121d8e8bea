import { SluiceError, type SluiceConfig } from '@sluice/config';
import { ERR_SINK_CHECK } from '@sluice/schema';
import type { ObjectStore, ObjectStoreCheck } from '@sluice/sinks';
import { deadLetterSink, sinkDefinition } from '@sluice/sinks/registry';

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
export async function checkStores(
  stores: readonly { id: string; type: string; store: ObjectStore }[],
): Promise<SinkCheckResult[]> {
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
  const message = err instanceof Error ? err.message : String(err);
  return new SluiceError(ERR_SINK_CHECK, `${prefix}${message}`, { cause: err });
}

/** Every sink that failed its check, one line each (`sink <id>: ... (CODE)`). */
export class SinkCheckError extends SluiceError {
  readonly failures: readonly SluiceError[];

  constructor(failures: readonly SluiceError[]) {
    super(failures[0]?.code ?? ERR_SINK_CHECK, failures.map((f) => `${f.message} (${f.code})`).join('\n'));
    this.name = 'SinkCheckError';
    this.failures = failures;
  }
}

/** Every sink's store (and the dead-letter directory) for `sluice validate --check-connectivity`. */
export async function storesOf(config: SluiceConfig): Promise<{ id: string; type: string; store: ObjectStore }[]> {
  const out = await Promise.all(
    Object.values(config.sinks).map(async (sink) => ({
      id: sink.id,
      type: sink.type,
      store: await sinkDefinition(sink).store(sink, {}),
    })),
  );
  if (config.dead_letter !== null)
    out.push({ id: 'dead_letter', type: deadLetterSink.type, store: deadLetterSink.store(config.dead_letter.path) });
  return out;
}
