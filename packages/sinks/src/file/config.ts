/** The `file` sink: objects into a local directory tree (the embedded default's sink). */
import { statSync } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { INVALID, componentType, req, string, type Invalid } from '@sluice/schema';
import { commonSink, sinkOptions, type SinkBase, type SinkDefinition } from '../config.ts';
import { FileStore } from './file-store.ts';

export interface FileSinkConfig extends SinkBase {
  readonly type: 'file';
  readonly path: string;
}

const fileOptions = {
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
  store: async (c, ctx) =>
    new FileStore({ path: resolvePath(c.path), ...(ctx.diskHooks === undefined ? {} : { diskHooks: ctx.diskHooks }) }),
  location: (c) => resolvePath(c.path),
  shutdownTimeoutSecs: () => null,
  abandonedNote: '',
  reader: async (c) => {
    const { FileReader } = await import('./file-reader.ts');
    return new FileReader(resolvePath(c.path), c.key_prefix);
  },
  // A directory (the sink's path with a key_prefix of folders), or a directory and the start
  // of the names in it (`/data/out/app-` for key_prefix `app-`).
  readPath: (path) => {
    if (path.includes('://')) return undefined;
    let isDir = path.endsWith('/');
    try {
      isDir ||= statSync(path).isDirectory();
    } catch {
      // Not there (yet): a name prefix, or a missing directory the listing will report.
    }
    return isDir ? { path, key_prefix: '' } : { path: dirname(path), key_prefix: basename(path) };
  },
};
