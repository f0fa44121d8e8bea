import type { Env } from './types.ts';

/** Result of interpolating one string scalar. */
export interface Interpolation {
  readonly value: string;
  /** True when at least one `${...}` was replaced: such strings may stand for numbers/booleans. */
  readonly substituted: boolean;
  /** Problems, phrased so they never contain the string itself (it may be a secret). */
  readonly errors: readonly string[];
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in a string that was already parsed out of the YAML,
 * so an environment value can never inject YAML structure. `$$` is a literal `$`; a `$` not
 * followed by `{` or `$` is kept. As in the shell, `:-` also applies when VAR is set but empty.
 * The default is the literal text up to the first `}` (no nesting).
 */
export function interpolate(text: string, env: Env): Interpolation {
  if (!text.includes('$')) return { value: text, substituted: false, errors: [] };
  let value = '';
  let substituted = false;
  const errors: string[] = [];
  let at = 0;
  while (at < text.length) {
    const dollar = text.indexOf('$', at);
    if (dollar === -1) {
      value += text.slice(at);
      break;
    }
    value += text.slice(at, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      value += '$';
      at = dollar + 2;
      continue;
    }
    if (next !== '{') {
      value += '$';
      at = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close === -1) {
      errors.push('unterminated `${`; write `$$` for a literal `$`');
      break;
    }
    const inner = text.slice(dollar + 2, close);
    const separator = inner.indexOf(':-');
    const name = separator === -1 ? inner : inner.slice(0, separator);
    at = close + 1;
    if (!VARIABLE_NAME.test(name)) {
      errors.push(
        'invalid `${...}`: write `${NAME}` or `${NAME:-default}` with NAME made of letters, digits and _, or `$$` for a literal `$`',
      );
      continue;
    }
    substituted = true;
    const fromEnv = env[name];
    if (fromEnv !== undefined && (separator === -1 || fromEnv !== '')) value += fromEnv;
    else if (separator !== -1) value += inner.slice(separator + 2);
    else errors.push(`environment variable \`${name}\` is not set (write \`\${${name}:-default}\` to give a default)`);
  }
  return { value, substituted, errors };
}
