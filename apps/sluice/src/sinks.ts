import { resolve as resolvePath } from 'node:path';
import type { SinkConfig } from '@sluice/config';
import { FileStore, type ObjectStore } from '@sluice/sinks';
import type { Logger } from '@sluice/telemetry';

/** The store behind a sink: where an object's bytes go. Everything else is the shared ObjectWriter. */
export function buildSinkStore(id: string, sink: SinkConfig, _logger: Logger): ObjectStore {
  switch (sink.type) {
    case 'file':
      return new FileStore({ path: resolvePath(sink.path) });
    default:
      throw new Error(`sinks.${id}: type ${sink.type} is not built yet`);
  }
}
