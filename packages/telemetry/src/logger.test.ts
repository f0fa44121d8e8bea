import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from './logger.ts';

const LOGGER = new URL('./logger.ts', import.meta.url).pathname;

/** Run a snippet with `createLogger` in scope, stdout piped (not a TTY); returns what it printed. */
function runLogger(format: 'json' | 'pretty', body: string): { stdout: string; stderr: string; status: number | null } {
  const script = `import { createLogger } from ${JSON.stringify(LOGGER)};
const logger = createLogger({ level: 'info', format: ${JSON.stringify(format)} });
${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe('createLogger', () => {
  it('json: one object a line, child bindings on every line, secrets redacted', () => {
    const r = runLogger(
      'json',
      `logger.child({ component_id: 'src', component_type: 'tcp' }).info({ secret_access_key: 'S3CR3T-value', nested: { authorization: 'Splunk tok-123' } }, 'hello');`,
    );
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'hello',
      service: 'sluice',
      component_id: 'src',
      component_type: 'tcp',
      secret_access_key: '(redacted)',
      nested: { authorization: '(redacted)' },
    });
    expect(r.stdout).not.toContain('S3CR3T');
    expect(r.stdout).not.toContain('tok-123');
  });

  it('pretty: readable lines without colour codes when stdout is not a TTY, including a fatal line right before exit', () => {
    const r = runLogger(
      'pretty',
      `logger.child({ component_id: 'src', component_type: 'tcp' }).warn({ secret_access_key: 'S3CR3T-value', peer: '10.0.0.7' }, 'tcp connection error');
logger.fatal({ code: 'SLUICE_ERR_BIND' }, 'sluice could not start');
logger.flush();
process.exit(1);`,
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} [+-]\d{4}\] WARN: tcp connection error\n/);
    expect(r.stdout).toContain('component_id: "src"');
    expect(r.stdout).toContain('peer: "10.0.0.7"');
    expect(r.stdout).toContain('secret_access_key: "(redacted)"');
    expect(r.stdout).toMatch(/FATAL: sluice could not start\n\s+code: "SLUICE_ERR_BIND"/);
    expect(r.stdout).not.toContain('\x1b[');
    expect(r.stdout).not.toContain('{"level"');
    expect(r.stdout).not.toContain('S3CR3T');
  });
});

describe('RateLimitedLog', () => {
  it('logs the first occurrence of a key, then at most one line per interval with the number kept quiet', () => {
    const lines: { level: string; obj: object; msg: string }[] = [];
    const logger = {
      warn: (obj: object, msg: string) => void lines.push({ level: 'warn', obj, msg }),
      error: (obj: object, msg: string) => void lines.push({ level: 'error', obj, msg }),
    };
    let now = 0;
    const log = new RateLimitedLog(logger, 60_000, 1024, () => now);
    for (let i = 0; i < 100; i++) log.warn('conn-error:ECONNRESET', { peer: '10.0.0.7' }, 'tcp connection error');
    log.error('decoder', { detail: 'x' }, 'hec decoder failed');
    now = 59_999;
    log.warn('conn-error:ECONNRESET', { peer: '10.0.0.8' }, 'tcp connection error');
    now = 60_000;
    log.warn('conn-error:ECONNRESET', { peer: '10.0.0.9' }, 'tcp connection error');
    expect(lines).toEqual([
      { level: 'warn', obj: { peer: '10.0.0.7' }, msg: 'tcp connection error' },
      { level: 'error', obj: { detail: 'x' }, msg: 'hec decoder failed' },
      { level: 'warn', obj: { peer: '10.0.0.9', suppressed: 100 }, msg: 'tcp connection error' },
    ]);
  });
});
