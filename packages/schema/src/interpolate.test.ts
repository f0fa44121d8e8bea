import { describe, expect, it } from 'vitest';
import { interpolate } from './interpolate.ts';
import { closest, editDistance } from './suggest.ts';

describe('interpolate', () => {
  const env = { A: 'alpha', EMPTY: '', NUM: '42' };

  it.each([
    ['plain', 'plain', false],
    ['${A}', 'alpha', true],
    ['x-${A}-${NUM}', 'x-alpha-42', true],
    ['${MISSING:-fallback}', 'fallback', true],
    ['${MISSING:-}', '', true],
    ['${A:-fallback}', 'alpha', true],
    ['${EMPTY:-fallback}', 'fallback', true],
    ['${EMPTY}', '', true],
    ['${MISSING:-a:-b}', 'a:-b', true],
    ['$$', '$', false],
    ['$${A}', '${A}', false],
    ['$$$${A}', '$${A}', false],
    ['$$$$${A}', '$$alpha', true],
    ['cost $5', 'cost $5', false],
    ['$', '$', false],
    ['end$', 'end$', false],
  ])('%s', (text, value, substituted) => {
    expect(interpolate(text, env)).toEqual({ value, substituted, errors: [] });
  });

  it('reports missing variables, bad names and unterminated references', () => {
    expect(interpolate('${NOPE}', env).errors).toEqual([
      'environment variable `NOPE` is not set (write `${NOPE:-default}` to give a default)',
    ]);
    expect(interpolate('${1BAD}', env).errors).toEqual([
      'invalid `${...}`: write `${NAME}` or `${NAME:-default}` with NAME made of letters, digits and _, or `$$` for a literal `$`',
    ]);
    expect(interpolate('${}', env).errors).toHaveLength(1);
    expect(interpolate('${A-x}', env).errors).toHaveLength(1);
    expect(interpolate('abc${A', env).errors).toEqual(['unterminated `${`; write `$$` for a literal `$`']);
    expect(interpolate('${X}${Y}', env).errors).toHaveLength(2);
  });

  it('does not read the environment again from a substituted value', () => {
    expect(interpolate('${V}', { V: '${A}', A: 'alpha' }).value).toBe('${A}');
  });
});

describe('suggestions', () => {
  it('measures edits, counting a transposition as one', () => {
    expect(editDistance('address', 'address')).toBe(0);
    expect(editDistance('adress', 'address')).toBe(1);
    expect(editDistance('adderss', 'address')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests only plausible typos', () => {
    expect(closest('adress', ['address', 'extra_tags'])).toBe('address');
    expect(closest('warning', ['warn', 'error'])).toBe('warn');
    expect(closest('Address', ['address'])).toBe('address');
    expect(closest('colour', ['address', 'bucket'])).toBeUndefined();
    expect(closest('ab', ['cd'])).toBeUndefined();
  });
});
