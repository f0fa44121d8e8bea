import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import type { Registry } from './prom.ts';

// node:http by require(), not import: importing it as an ES module reads every export,
// and its lazy WebSocket/MessageEvent getters then load Node's fetch implementation (undici,
// ~12 MiB resident) that the daemon never uses.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export interface Readiness {
  ready: boolean;
  /** Component id → what is wrong, for the components that are not ready. */
  problems: Record<string, string>;
}

export interface ApiServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Readiness;
}

/**
 * The operator's port: `/metrics` (Prometheus text), `/healthz` (the process answers),
 * `/readyz` (every source bound and every sink able to write; 503 with the reasons otherwise).
 */
export async function startApiServer(
  opts: ApiServerOptions,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      opts.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
        (err: unknown) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      const r = opts.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
