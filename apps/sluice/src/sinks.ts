import { resolve as resolvePath } from 'node:path';
import type { SinkConfig } from '@sluice/config';
import { FileStore, s3StoreFromConfig, type ObjectStore } from '@sluice/sinks';
import type { Logger } from '@sluice/telemetry';

/** The store behind a sink: where an object's bytes go. Everything else is the shared ObjectWriter. */
export function buildSinkStore(sink: SinkConfig, logger: Logger): ObjectStore {
  switch (sink.type) {
    case 'file':
      return new FileStore({ path: resolvePath(sink.path) });
    case 'aws_s3':
      return s3StoreFromConfig(sink, logger);
  }
}
