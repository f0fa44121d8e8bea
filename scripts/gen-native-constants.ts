/**
 * Writes the C++ headers that share Sluice's TypeScript constants with the native addons, so
 * each number is defined once, in TypeScript:
 *
 *   packages/ring/src/record-format.ts   the ring's layout and record format
 *   packages/worker/src/native-constants.ts   processRecords' state slots and statuses, the
 *                                        scan's result bits, the index facts' layout, the
 *                                        malformed reasons
 *     → packages/sources/native/generated-constants.h   (udp_recv.cc: the ring format)
 *     → packages/worker/native/generated-constants.h    (batch.cc, facts.h, hec_scan.cc)
 *
 * The headers are checked in (the image compiles the addons from them without running this).
 *
 *   node_modules/.bin/node scripts/gen-native-constants.ts           rewrite what changed
 *   node_modules/.bin/node scripts/gen-native-constants.ts --check   exit 1 naming each stale header
 *
 * scripts/test.sh runs --check before the type-check, and so does
 * packages/worker/src/native-constants.test.ts (so `npx vitest run` covers it too).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

// --root=DIR: another tree laid out like this one (the test checks a copy with an edited constant).
const ROOT =
  process.argv.find((a) => a.startsWith('--root='))?.slice('--root='.length) ??
  join(dirname(new URL(import.meta.url).pathname), '..');

/** A TypeScript module of constants, and the C++ namespace its constants go into. */
interface Source {
  path: string;
  namespace: string;
}

const RING: Source = { path: 'packages/ring/src/record-format.ts', namespace: 'sluice::ring' };
const WORKER: Source = { path: 'packages/worker/src/native-constants.ts', namespace: 'sluice::worker' };

/** One constant: its name in TypeScript (and C++), and its C++ type. */
type Constant = [name: string, type: string];

interface Header {
  path: string;
  /** What includes it, for the banner. */
  users: string;
  sections: { source: Source; constants: Constant[]; reasons?: string }[];
}

const slots = (names: string[]): Constant[] => names.map((n) => [n, 'int']);

export const HEADERS: Header[] = [
  {
    path: 'packages/sources/native/generated-constants.h',
    users: 'udp_recv.cc',
    sections: [
      {
        source: RING,
        constants: [
          ['HEADER_BYTES', 'uint32_t'],
          ['WRITE_INDEX', 'int'],
          ['READ_INDEX', 'int'],
          ['CAPACITY', 'int'],
          ['RECORD_HEADER_BYTES', 'uint32_t'],
          ['PEER_LEN_MASK', 'uint8_t'],
          ['BLOCK_FLAG', 'uint8_t'],
          ['MAX_PEER_BYTES', 'size_t'],
        ],
      },
    ],
  },
  {
    path: 'packages/worker/native/generated-constants.h',
    users: 'batch.cc, facts.h, hec_scan.cc',
    sections: [
      {
        source: RING,
        constants: [
          ['RECORD_HEADER_BYTES', 'uint32_t'],
          ['PEER_LEN_MASK', 'uint8_t'],
          ['BLOCK_FLAG', 'uint8_t'],
        ],
      },
      {
        source: WORKER,
        constants: [
          ...slots(['S_LENGTH', 'S_MAX_DEPTH', 'S_DEAD_LETTER', 'S_OFF', 'S_LINE', 'S_POS', 'S_DL_POS']),
          ...slots(['S_NEED', 'S_DL_NEED']),
          ...slots(['S_RECORDS', 'S_ACCEPTED', 'S_INPUT_BYTES', 'S_SERVICE', 'S_KERNEL', 'S_OTHER', 'S_MALFORMED']),
          ...slots(['S_F_RECORDS', 'S_F_UNTIMED', 'S_F_UNCERTAIN', 'S_F_OVERFLOW', 'S_F_HAS_TIME', 'STATE_SLOTS']),
          ['ST_DONE', 'int'],
          ['ST_GROW', 'int'],
          ['SCAN_REJECT', 'int'],
          ['SCAN_OK', 'int'],
          ['SCAN_COLLIDES', 'int'],
          ['SCAN_TALOS_SERVICE', 'int'],
          ['SCAN_FACILITY', 'int'],
          ['SCAN_PRIORITY', 'int'],
          ['SCAN_CLOCK', 'int'],
          ['SCAN_SEQ', 'int'],
          ['SCAN_KERNEL', 'int'],
          ['MAX_SCAN_DEPTH', 'int'],
          ['KEY_INHERITED', 'uint32_t'],
          ['MAX_FIELD_VALUES', 'uint32_t'],
          ['F_STRIDE', 'size_t'],
          ['F_MANY', 'uint32_t'],
          ['F_MAX_FIELDS', 'uint32_t'],
          ['F_TIME_LEN', 'size_t'],
        ],
        reasons: 'MALFORMED_REASONS',
      },
    ],
  },
];

/** The JSDoc right before `export const name` in `text`, as plain words; '' when there is none. */
function docOf(text: string, name: string): string {
  const at = text.search(new RegExp(`^export const ${name}\\b`, 'm'));
  if (at < 0) throw new Error(`no \`export const ${name}\``);
  const before = text.slice(0, at).trimEnd();
  if (!before.endsWith('*/')) return '';
  const start = before.lastIndexOf('/**');
  return before
    .slice(start + 3, -2)
    .split('\n')
    .map((l) => l.replace(/^\s*\*\s?/, '').trim())
    .filter((l) => l !== '')
    .join(' ')
    .replace(/\{@link (\w+)\}/g, '$1');
}

/** `words` as `// ` comment lines of at most 110 characters. */
function comment(words: string, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const w of words.split(' ')) {
    if (line !== '' && indent.length + 3 + line.length + 1 + w.length > 110) {
      lines.push(`${indent}// ${line}`);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') lines.push(`${indent}// ${line}`);
  return lines;
}

function literal(name: string, value: unknown, type: string, text: string): string {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new Error(`${name} is not an integer: ${String(value)}`);
  }
  const unsigned = type.startsWith('uint') || type === 'size_t';
  if (unsigned && value < 0) throw new Error(`${name} is negative but its C++ type ${type} is unsigned`);
  if (value > 0x7fffffff && !unsigned) throw new Error(`${name} does not fit ${type}`);
  // Hexadecimal where the TypeScript spells it so (masks, flags).
  const hex = new RegExp(`^export const ${name}\\s*=\\s*0x`, 'm').test(text);
  const digits = hex ? `0x${value.toString(16)}` : String(value);
  return unsigned && type !== 'uint8_t' ? `${digits}u` : digits;
}

/** The text of one header, from the modules as loaded. */
export async function render(header: Header): Promise<string> {
  const out: string[] = [];
  const guard = `SLUICE_${header.path
    .replace(/^packages\//, '')
    .replace(/[^A-Za-z0-9]/g, '_')
    .toUpperCase()}`;
  out.push('// Generated by scripts/gen-native-constants.ts: do not edit. From');
  for (const path of new Set(header.sections.map((s) => s.source.path))) out.push(`//   ${path}`);
  out.push('// Change the TypeScript, then run `node_modules/.bin/node scripts/gen-native-constants.ts`.');
  out.push(`// Included by ${header.users}.`);
  out.push('', `#ifndef ${guard}`, `#define ${guard}`, '', '#include <cstddef>', '#include <cstdint>');
  for (const section of header.sections) {
    const text = readFileSync(join(ROOT, section.source.path), 'utf8');
    const mod = (await import(pathToFileURL(join(ROOT, section.source.path)).href)) as Record<string, unknown>;
    out.push('', `// ${section.source.path}`, `namespace ${section.source.namespace} {`, '');
    for (const [name, type] of section.constants) {
      out.push(...comment(docOf(text, name)));
      out.push(`constexpr ${type} ${name} = ${literal(name, mod[name], type, text)};`);
    }
    if (section.reasons !== undefined) {
      const reasons = mod[section.reasons];
      if (!Array.isArray(reasons) || !reasons.every((r) => typeof r === 'string' && /^[a-z0-9_]+$/.test(r))) {
        throw new Error(`${section.reasons} is not a list of snake_case names`);
      }
      out.push(...comment(docOf(text, section.reasons)));
      out.push(...comment('R_<REASON> is the index of a reason in that list; R_COUNT their number.'));
      for (const [i, r] of reasons.entries()) out.push(`constexpr int R_${r.toUpperCase()} = ${i};`);
      out.push(`constexpr int R_COUNT = ${reasons.length};`);
      out.push('constexpr const char* REASON_NAMES[R_COUNT] = {');
      for (const r of reasons as string[]) out.push(`    ${JSON.stringify(r)},`);
      out.push('};');
    }
    out.push('', `}  // namespace ${section.source.namespace}`);
  }
  out.push('', `#endif  // ${guard}`, '');
  return out.join('\n');
}

/** Each header whose checked-in text differs from what it would be now (or that is missing). */
export async function staleHeaders(): Promise<string[]> {
  const stale: string[] = [];
  for (const h of HEADERS) {
    const file = join(ROOT, h.path);
    if (!existsSync(file) || readFileSync(file, 'utf8') !== (await render(h))) stale.push(h.path);
  }
  return stale;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--check')) {
    const stale = await staleHeaders();
    for (const path of stale) {
      process.stderr.write(
        `gen-native-constants: ${path} is stale: it differs from what its TypeScript source gives; ` +
          'run `node_modules/.bin/node scripts/gen-native-constants.ts` and commit it\n',
      );
    }
    process.exit(stale.length === 0 ? 0 : 1);
  }
  for (const h of HEADERS) {
    const text = await render(h);
    const file = join(ROOT, h.path);
    if (existsSync(file) && readFileSync(file, 'utf8') === text) continue;
    writeFileSync(file, text);
    process.stderr.write(`gen-native-constants: wrote ${h.path}\n`);
  }
}
