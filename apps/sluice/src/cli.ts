import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  ConfigError,
  DEFAULT_CONFIG_YAML,
  SluiceError,
  defaultConfig,
  loadConfigFile,
  type SluiceConfig,
} from '@sluice/config';
import { createLogger } from '@sluice/telemetry';
import { checkStores, SinkCheckError, storesOf } from './sinks.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

const HELP = `sluice ${VERSION}: receives Talos json_lines (TCP, UDP) and Splunk HEC (HTTP) and
lands them, tagged and compressed, in a local directory or S3-compatible object storage.

Usage:
  sluice run [--config FILE]        run the daemon (without --config: the embedded default,
                                    loopback TCP :5170 and UDP :6050 into ./data/out)
  sluice validate --config FILE [--check-connectivity]
                                    check a config file; exit 0, or 1 with one line per problem.
                                    --check-connectivity then checks every sink's destination
                                    (S3: HeadBucket with its credentials; file: the directory
                                    is created if missing and must be writable)
  sluice read --path DIR | s3://BUCKET/PREFIX [filters]   (or --config FILE --sink ID)
                                    print stored records: --since/--until TIME, --where KEY=VALUE,
                                    --grep REGEX, --limit N, --format ndjson|pretty, --follow,
                                    --stats (docs/reading.md)
  sluice default-config             print the embedded default config as YAML
  sluice --help | --version

Signals: SIGTERM or SIGINT drains (stop accepting, flush rings and workers, complete every
open object) and exits 0; a second signal exits at once with code 1. Objects not completed
within shutdown_timeout_secs are counted as discarded and the exit code is 1.
Configuration reference: the README, section "Configuration reference"`;

function fail(message: string, code = 1): never {
  process.stderr.write(message.endsWith('\n') ? message : `${message}\n`);
  process.exit(code);
}

/** One line per problem for a user: the message (it names the component) and the code. */
function explain(err: unknown): string {
  if (err instanceof SinkCheckError) return err.message; // one line per sink, each with its code
  if (err instanceof SluiceError) return `${err.message} (${err.code})`;
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** For the engine log: a SluiceError is an expected failure, told by its code and message (no stack). */
function logFields(err: unknown): Record<string, unknown> {
  return err instanceof SluiceError ? { code: err.code, error: err.message } : { err };
}

function loadOrExit(path: string | undefined): SluiceConfig {
  if (path === undefined) return defaultConfig();
  try {
    return loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) fail(`sluice: invalid configuration in ${path}\n${err.message}`);
    if (err instanceof SluiceError) fail(`sluice: ${err.message}`);
    throw err;
  }
}

async function run(configPath: string | undefined): Promise<void> {
  const config = loadOrExit(configPath);
  // Loaded here, not at the top: `sluice read` starts without the daemon's modules (the AWS
  // SDK among them), 0.3 s less per read.
  const { Daemon } = await import('./daemon.ts');
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  const daemon = new Daemon({ config, logger, version: VERSION });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      logger.flush();
      process.exit(1);
    }
    logger.info({ signal }, 'signal received: draining');
    daemon.shutdown().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error(logFields(err), 'shutdown did not complete');
        logger.flush();
        process.stderr.write(`sluice: ${explain(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => void daemon.reloadTls());
  try {
    await daemon.start();
  } catch (err) {
    // Once on stderr for the person at the terminal, once in the engine log for the shipper;
    // never a stack for an expected failure (a missing bucket is not a crash), never a secret
    // (the stores redact their messages; config errors never quote one).
    logger.fatal(logFields(err), 'sluice could not start');
    process.stderr.write(
      explain(err)
        .split('\n')
        .map((line) => `sluice: ${line}\n`)
        .join(''),
    );
    await daemon.shutdown().catch(() => undefined);
    logger.flush();
    process.exit(1);
  }
}

/** `validate --check-connectivity`: each sink's store check(), one line per sink; exit 1 if any fails. */
async function checkConnectivity(cfg: SluiceConfig): Promise<void> {
  let stores: Awaited<ReturnType<typeof storesOf>>;
  try {
    stores = await storesOf(cfg);
  } catch (err) {
    fail(`sluice: ${explain(err)}`);
  }
  const results = await checkStores(stores);
  for (const s of stores) s.store.release?.();
  let failed = 0;
  for (const r of results) {
    const name = r.id === 'dead_letter' ? 'dead_letter' : `sinks.${r.id}`;
    if (r.error === null) {
      process.stdout.write(`${name} (${r.type}): OK\n`);
    } else {
      failed++;
      const message = r.error.message.replace(`sink ${r.id}: `, '');
      process.stderr.write(`${name} (${r.type}): ${message} (${r.error.code})\n`);
    }
  }
  if (failed > 0) process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  // `read` has options of its own (read/command.ts).
  if (argv[0] === 'read') {
    // Loaded for `read` only: the daemon does not carry the reader's modules.
    const { readCommand } = await import('./read/command.ts');
    const code = await readCommand(argv.slice(1));
    // stdout may still hold bytes for a slow pipe: exit once they are written.
    process.exitCode = code;
    return;
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
      'check-connectivity': { type: 'boolean' },
    },
  });
  if (values.version === true) {
    process.stdout.write(`sluice ${VERSION} (node ${process.versions.node})\n`);
    return;
  }
  const command = positionals[0];
  if (values.help === true || command === undefined || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  switch (command) {
    case 'run':
      await run(values.config);
      return;
    case 'validate': {
      if (values.config === undefined) fail('sluice validate: --config FILE is required');
      const cfg = loadOrExit(values.config);
      process.stdout.write(
        `${values.config}: OK (${Object.keys(cfg.sources).length} sources, ${Object.keys(cfg.sinks).length} sinks)\n`,
      );
      if (values['check-connectivity'] === true) await checkConnectivity(cfg);
      return;
    }
    case 'default-config':
      process.stdout.write(DEFAULT_CONFIG_YAML);
      return;
    default:
      fail(`sluice: unknown command "${command}"\n\n${HELP}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true)
    fail(`sluice: ${err.message}\n\n${HELP}`);
  fail(`sluice: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
