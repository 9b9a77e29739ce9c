/**
 * What every training command shows while a run goes (train, sft): a progress bar on a terminal
 * (plain log lines otherwise), evaluation lines above it, and Ctrl-C handling — the first asks
 * the run to save a checkpoint and stop, the second quits at once. SIGTERM (`kill`, a job
 * scheduler, `docker stop`) is handled the same way.
 */
import cliProgress from 'cli-progress';
import type { EvalRecord } from '../train/metrics.js';
import type { RunHooks } from '../train/run-loop.js';

export function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s - 60 * m)).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

export interface RunProgress<C> {
  hooks: RunHooks<C>;
  /** For the run's shouldStop: true once Ctrl-C was pressed (or SIGTERM received). */
  interrupted: () => boolean;
  /** Removes the bar and the signal handler; call in a finally. */
  stop: () => void;
}

/**
 * Hooks that show a run's progress. `describeStart` prints the opening lines (the hook's info);
 * `describeEval` turns an evaluation into its line (default: train and val loss).
 */
export function runProgress<C>(describeStart: (info: Parameters<NonNullable<RunHooks<C>['onStart']>>[0]) => string[], describeEval: (r: EvalRecord) => string = defaultEvalLine): RunProgress<C> {
  const interactive = process.stdout.isTTY === true;
  // A MultiBar with one bar, because it can print log lines above the bar.
  const bars = new cliProgress.MultiBar(
    { format: 'step {value}/{total} |{bar}| loss {loss} | {tps} tok/s | {elapsed} elapsed | ETA {eta_formatted}', hideCursor: true, etaBuffer: 50, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  let bar: cliProgress.SingleBar | null = null;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // 128 + the signal's number, as a shell reports a process that the signal killed.
    if (interrupted) process.exit(signal === 'SIGTERM' ? 143 : 130);
    interrupted = true;
    const how = signal === 'SIGTERM' ? 'SIGTERM: saving a checkpoint (send it again to quit without saving)' : 'interrupt: saving a checkpoint (Ctrl-C again to quit without saving)';
    process.stderr.write(`\n${how}\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const hooks: RunHooks<C> = {
    onStart: (info) => {
      for (const line of describeStart(info)) console.log(line);
      if (interactive) bar = bars.create(info.plannedSteps, info.startStep, { loss: '–', tps: '–', elapsed: '0s' });
    },
    onPlanned: (steps) => {
      if (bar) bar.setTotal(steps);
      else console.log(`planned ${steps} steps for the time budget`);
    },
    onTrainLog: (r, total) => {
      const fields = { loss: r.loss.toFixed(4), tps: Math.round(r.tokensPerSecond).toLocaleString('en-US'), elapsed: formatSeconds(r.elapsedSeconds) };
      if (bar) bar.update(r.step, fields);
      else if (r.step % (10 * Math.max(1, Math.floor(total / 200))) === 0) console.log(`step ${r.step}/${total} loss ${fields.loss} ${fields.tps} tok/s ${fields.elapsed}`);
    },
    onEval: (r) => {
      const line = describeEval(r);
      if (bar) bars.log(line + '\n');
      else console.log(line);
    },
  };
  return {
    hooks,
    interrupted: () => interrupted,
    stop: () => {
      bars.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function defaultEvalLine(r: EvalRecord): string {
  const m = r.metrics;
  // An MoE run's expert utilisation (routerMetrics): the busiest and idlest expert's load, 1 = balanced.
  const experts = m && m['moe.maxLoad'] !== undefined ? `, expert load ${m['moe.minLoad'].toFixed(2)}–${m['moe.maxLoad'].toFixed(2)} (aux ${m['moe.auxLoss'].toFixed(3)})` : '';
  return `step ${r.step}: train loss ${r.trainLoss.toFixed(4)}, val loss ${r.valLoss.toFixed(4)}${experts}`;
}
