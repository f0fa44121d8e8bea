/**
 * Preloaded into a daemon (`node --import test/helpers/record-modules.ts ...`) by tests that
 * check what it loads. When the process exits, the file named by SLUICE_RECORD_MODULES gets,
 * one a line, every module URL resolved on the main thread (ES imports and require() alike)
 * and every Node built-in it loaded, internal ones included, as `builtin:<id>`
 * (process.moduleLoadList: the built-ins a package loads from inside Node are there too).
 */
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env['SLUICE_RECORD_MODULES'];
if (out !== undefined && out !== '') {
  const seen = new Set<string>();
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const r = nextResolve(specifier, context);
      seen.add(r.url);
      return r;
    },
  });
  process.on('exit', () => {
    const builtins = (process as unknown as { moduleLoadList: string[] }).moduleLoadList
      .filter((m) => m.startsWith('NativeModule '))
      .map((m) => `builtin:${m.slice('NativeModule '.length)}`);
    writeFileSync(out, `${[...seen, ...builtins].join('\n')}\n`);
  });
}
