/** The `file` sink: objects into a local directory tree (the embedded default's sink). */
import { resolve as resolvePath } from 'node:path';
import { INVALID, componentType, req, string, type Invalid } from '@sluice/schema';
import { commonSink, sinkOptions, type SinkBase, type SinkDefinition } from '../config.ts';
import { FileStore } from './file-store.ts';

export interface FileSinkConfig extends SinkBase {
  readonly type: 'file';
  readonly path: string;
}

export const fileOptions = {
  ...sinkOptions,
  path: req(string()),
};

export const fileSink: SinkDefinition<FileSinkConfig> = {
  type: 'file',
  ...componentType(fileOptions, (v, id, path, ctx): FileSinkConfig | Invalid => {
    const common = commonSink(v, id, path, ctx);
    if (common === INVALID) return INVALID;
    return { ...common, type: 'file', path: v.path };
  }),
  store: async (c, ctx) => new FileStore({ path: resolvePath(c.path), ...(ctx.diskHooks === undefined ? {} : { diskHooks: ctx.diskHooks }) }),
  location: (c) => resolvePath(c.path),
  shutdownTimeoutSecs: () => null,
  abandonedNote: '',
};
