/** Reading a configuration file: YAML 1.2 (so JSON too), duplicate keys rejected. */
import { readFileSync } from 'node:fs';
import { LineCounter, isMap as isYamlMap, isScalar, isSeq, parseDocument } from 'yaml';
import { ConfigError, childPath, type ConfigIssue } from '@sluice/schema';
import type { Env, SluiceConfig } from './types.ts';
import { checkConfig } from './validate.ts';

/**
 * Parses and validates configuration text. `sourceName` (usually the file path) locates
 * syntax errors. Messages carry line and column but never the line's text, which may hold a
 * secret. Throws ConfigError with every issue.
 */
export function parseConfig(text: string, sourceName: string, env: Env = process.env): SluiceConfig {
  const lineCounter = new LineCounter();
  // prettyErrors: false keeps the source excerpt out of the messages.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const where = (offset: number): string => {
    const { line, col } = lineCounter.linePos(offset);
    return `${sourceName}:${line}:${col}`;
  };
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    throw new ConfigError(problems.map((problem) => ({ path: where(problem.pos[0]), message: problem.message })));
  }
  const issues: ConfigIssue[] = [];
  findDuplicateKeys(doc.contents, '', (offset) => lineCounter.linePos(offset).line, issues);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    // An alias bomb: too many expanded aliases.
    throw new ConfigError([...issues, { path: sourceName, message: (error as Error).message }]);
  }
  const result = checkConfig(raw, env);
  issues.push(...result.issues);
  if (issues.length > 0 || result.config === undefined) throw new ConfigError(issues);
  return result.config;
}

/** Reads a YAML or JSON file and validates it; see parseConfig(). */
export function loadConfigFile(path: string, env: Env = process.env): SluiceConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError([{ path, message: `cannot read the configuration file (${code})` }]);
  }
  return parseConfig(text, path, env);
}

/** The YAML library would keep the last value silently: a repeated key is almost always a mistake. */
function findDuplicateKeys(
  node: unknown,
  path: string,
  lineOf: (offset: number) => number,
  issues: ConfigIssue[],
): void {
  if (isYamlMap(node)) {
    const firstLine = new Map<string, number>();
    for (const pair of node.items) {
      const keyNode = pair.key;
      const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
      const line = isScalar(keyNode) && keyNode.range ? lineOf(keyNode.range[0]) : 0;
      const keyPath = childPath(path, key);
      const first = firstLine.get(key);
      if (first === undefined) firstLine.set(key, line);
      else issues.push({ path: keyPath, message: `duplicate key (line ${line}; first given on line ${first})` });
      findDuplicateKeys(pair.value, keyPath, lineOf, issues);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, index) => {
      findDuplicateKeys(item, childPath(path, index), lineOf, issues);
    });
  }
}
