/**
 * docs/deploy.md against what it describes: its YAML parses, the Talos endpoints and the
 * Secret it tells you to create match the manifests and configs, and the Bun version its
 * findings are about is the one installed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const ROOT = new URL('../../', import.meta.url).pathname;
const DOC = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
/** Fenced blocks of a language, with the indentation of their fence (inside list items) removed. */
const blocks = (lang: string): string[] =>
  [...DOC.matchAll(new RegExp(`^( *)\`\`\`${lang}\\n([\\s\\S]*?)^\\1\`\`\``, 'gm'))].map((m) =>
    m[2]!.replace(new RegExp(`^${m[1]}`, 'gm'), ''),
  );

describe('docs/deploy.md', () => {
  it('every yaml block parses', () => {
    const yaml = blocks('yaml');
    expect(yaml.length).toBeGreaterThanOrEqual(4);
    for (const b of yaml) expect(() => parseYaml(b), b).not.toThrow();
  });

  it('the Talos machine config sends service logs to the tcp port and kernel logs to the udp port of the DaemonSet config', () => {
    const docs = blocks('yaml').map((b) => parseYaml(b) as Record<string, unknown>);
    const logging = docs.find((d) => (d['machine'] as { logging?: unknown } | undefined)?.logging !== undefined)!;
    const dest = (
      logging['machine'] as {
        logging: { destinations: { endpoint: string; format: string; extraTags?: Record<string, string> }[] };
      }
    ).logging.destinations;
    expect(dest[0]).toMatchObject({ endpoint: 'tcp://127.0.0.1:5170/', format: 'json_lines' });
    expect(dest[0]!.extraTags).toBeDefined();
    expect(docs.find((d) => d['kind'] === 'KmsgLogConfig')).toEqual({
      apiVersion: 'v1alpha1',
      kind: 'KmsgLogConfig',
      name: 'sluice',
      url: 'udp://127.0.0.1:6050/',
    });
    const install = docs.find((d) => (d['machine'] as { install?: unknown } | undefined)?.install !== undefined)!;
    expect((install['machine'] as { install: { extraKernelArgs: string[] } }).install.extraKernelArgs).toEqual([
      'talos.logging.kernel=udp://127.0.0.1:6050/',
    ]);
    const cfg = readFileSync(join(ROOT, 'deploy/kubernetes/base/sluice.yaml'), 'utf8');
    expect(cfg).toMatch(/talos_service:\n\s+type: tcp\n\s+address: \$\{SLUICE_LISTEN_HOST:-0\.0\.0\.0\}:5170/);
    expect(cfg).toMatch(/talos_kernel:\n\s+type: udp\n\s+address: \$\{SLUICE_LISTEN_HOST:-0\.0\.0\.0\}:6050/);
  });

  it('the Secret it tells you to create has the name and keys the manifests read', () => {
    const cmd =
      /kubectl -n sluice create secret generic (\S+) \\\n\s+--from-literal=(\w+)=\S+ --from-literal=(\w+)=/.exec(DOC)!;
    expect(cmd).not.toBeNull();
    const ds = readFileSync(join(ROOT, 'deploy/kubernetes/base/daemonset.yaml'), 'utf8');
    for (const key of [cmd[2]!, cmd[3]!]) expect(ds).toMatch(new RegExp(`name: ${cmd[1]}\\n\\s+key: ${key}`));
  });

  it('says how the image is built here (the npm script, the pinned npm and corepack of its base), and its Bun findings name the installed Bun', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['image']).toBe('bash scripts/image.sh');
    expect(DOC).toContain('npm run image');
    const script = readFileSync(join(ROOT, 'scripts/image.sh'), 'utf8');
    const pin = (name: string): string => new RegExp(`^${name}=(\\S+)$`, 'm').exec(script)![1]!;
    expect(DOC).toContain(`(${pin('NPM_VERSION')}, ${pin('COREPACK_VERSION')} for`);
    const bun = (JSON.parse(readFileSync(join(ROOT, 'node_modules/bun/package.json'), 'utf8')) as { version: string })
      .version;
    expect(DOC).toContain(`Bun ${bun}`);
    expect(DOC).toContain('[docs/tailscale.md](tailscale.md)');
  });
});
