/** `tensorlm dashboard`: serves the live training dashboard (src/dashboard/server.ts) until Ctrl-C. */
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORT } from '../../dashboard/defaults.js';

function port(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`--port must be an integer in 0..65535 (0 picks a free port), got '${value}'`);
  return n;
}

async function runDashboard(opts: { run?: string[]; runs?: string; host: string; port: number }): Promise<void> {
  const runs = opts.runs ?? (opts.run === undefined ? 'runs' : undefined);
  if (opts.runs !== undefined && !existsSync(opts.runs)) throw new Error(`--runs ${opts.runs}: no such directory`);
  if (opts.runs === undefined && runs !== undefined && !existsSync(runs)) console.log(`${runs}/ does not exist yet; runs appear here once 'tensorlm train' starts one`);
  // Loaded here, not at the top: other commands need not load the HTTP server.
  const { startDashboard } = await import('../../dashboard/server.js');
  const dashboard = await startDashboard({ run: opts.run, runs, host: opts.host, port: opts.port });
  const what = [...(opts.run ?? []), ...(runs !== undefined ? [`${runs} (searched for runs)`] : [])].join(', ');
  console.log(`TensorLM dashboard at ${dashboard.url} serving ${what} — Ctrl-C to stop`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      console.log(`\n${signal}: stopping the dashboard`);
      dashboard.close().then(resolve, (error: unknown) => {
        console.error(`tensorlm dashboard: ${(error as Error).message}`);
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('serve a live dashboard of training runs (loss curves, samples, run comparison, generation, attention maps)')
    .option('--run <dirs...>', 'run directories to show (repeatable)')
    .option('--runs <dir>', 'a directory searched for runs, to depth 3 (default: runs/ when no --run is given)')
    .addOption(new Option('--host <host>', 'address to listen on; anything but localhost exposes your runs to the network').default(DEFAULT_HOST))
    .addOption(new Option('--port <n>', 'port to listen on (0 picks a free one)').default(DEFAULT_PORT).argParser(port))
    .action(async (opts: { run?: string[]; runs?: string; host: string; port: number }) => runDashboard(opts));
}
