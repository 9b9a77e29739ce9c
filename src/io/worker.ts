/**
 * Starting a worker thread on one of TensorLM's own modules, from the compiled library (dist/,
 * `.js`) or from its TypeScript sources (tsx, vitest). Data-parallel training (train/parallel.ts)
 * and parallel tokenization (tokenizers/parallel.ts) start their workers here.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * The file URL of tsx's ESM API (`tsx/esm/api`, whose `register()` installs its loader hooks in the
 * calling thread). createRequire resolves the CommonJS variant of that export, which cannot
 * register ESM hooks, so the `import` target is read from tsx's package.json exports.
 */
function tsxEsmApi(from: string): string {
  const pkgPath = createRequire(from).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports?: Record<string, unknown> };
  const entry = pkg.exports?.['./esm/api'] as { import?: string | { default?: string } } | undefined;
  const target = typeof entry?.import === 'string' ? entry.import : entry?.import?.default;
  if (typeof target !== 'string') throw new Error(`${pkgPath} has no ESM export './esm/api'`);
  return pathToFileURL(join(dirname(pkgPath), target)).href;
}

/**
 * A worker running the module `stem` (a path without extension, relative to `callerUrl`, the
 * caller's `import.meta.url`): `<stem>.js` when the caller is compiled JavaScript, `<stem>.ts`
 * through tsx when it runs from sources. `owner` names the caller in the error when tsx is missing.
 */
export function startModuleWorker(callerUrl: string, stem: string, workerData: unknown, owner: string): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`${stem}.js`, callerUrl), { workerData });
  // On Node 20 neither `execArgv: ['--import', 'tsx']` nor importing tsx's loader module in the
  // worker makes a .ts entry loadable (both fail with ERR_UNKNOWN_FILE_EXTENSION, measured on
  // Node 20.20), so an eval'd bootstrap calls register() from tsx's ESM API, then imports the entry.
  let api: string;
  try {
    api = tsxEsmApi(callerUrl);
  } catch (e) {
    throw new Error(`${owner}: running from TypeScript sources, the worker threads need the 'tsx' package to load them (${(e as Error).message}); install it or run the compiled dist/`);
  }
  const entry = new URL(`${stem}.ts`, callerUrl).href;
  const bootstrap = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/**
 * A worker's start-up as a promise with its settle functions: resolved when the worker reports it
 * is ready, rejected when it cannot start or dies first. It never counts as an unhandled
 * rejection, because nobody may ever await it (a pool or replica set that is never used); a
 * failure then surfaces at the next call instead.
 */
export function startupSignal(): { ready: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  ready.catch(() => {});
  return { ready, resolve, reject };
}
