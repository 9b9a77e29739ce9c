/** `tensorlm pipeline`: base → SFT → RL (→ DPO) and the report card, over src/posttrain/pipeline.ts (flags in, library call, lines out). */
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_PIPELINE_CONFIG, pipeline, stageTable, type PipelineStage } from '../../posttrain/pipeline.js';
import { parseDuration } from '../../train/config.js';
import { dataDirEnv } from '../../env.js';
import { nonNegativeInt, positiveInt } from '../args.js';
import { formatSeconds, runProgress, type RunProgress } from '../progress.js';

/** A stage's time budget: a duration (8m, 90s) or 0, which skips the stage. */
function stageTime(flag: string) {
  return (value: string): number => {
    if (value.trim() === '0') return 0;
    try {
      const seconds = parseDuration(value);
      if (seconds === null) throw new Error(`use 0 to skip a stage, not '${value}'`);
      return seconds;
    } catch (e) {
      throw new InvalidArgumentError(`${flag}: ${(e as Error).message}`);
    }
  };
}

function quote(arg: string): string {
  return /^[\w./:=,@+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function registerPipelineCommand(program: Command): void {
  const d = DEFAULT_PIPELINE_CONFIG;
  const time = (stage: PipelineStage, help: string) =>
    new Option(`--${stage}-time <duration>`, help).default(d.time[stage], d.time[stage] > 0 ? formatSeconds(d.time[stage]) : '0: skipped').argParser(stageTime(`--${stage}-time`));
  program
    .command('pipeline')
    .description('the whole run, nanochat-style: pretrain a base, SFT it, RL it (and optionally DPO it from the same SFT), each on its own time budget; then score every model on the same held-out problems and write a report card (report.md, report.json, accuracy.svg, curves.svg). Rerun the same command to continue where it stopped.')
    .requiredOption('--name <name>', 'the pipeline lives in <out-dir>/<name>/{base,sft,rl,dpo}')
    .option('--out-dir <dir>', 'directory of pipelines', d.outDir)
    .addOption(time('base', 'pretraining time budget'))
    .addOption(time('sft', 'SFT time budget'))
    .addOption(time('rl', 'RL (GRPO) time budget; 0 skips RL'))
    .addOption(time('dpo', 'DPO time budget (an alternative arm from the SFT run); 0 skips DPO'))
    .option('--tasks <list>', 'built-in tasks to fine-tune on and score, comma-separated', d.tasks.join(','))
    .option('--base-data <name|path>', "the base's text: 'tinyshakespeare' or a text file / directory", d.baseData)
    .option('--data-dir <dir>', 'where named datasets are cached (default: TENSORLM_DATA_DIR or ~/.cache/tensorlm)')
    .addOption(new Option('--replicas <n>', "data-parallel replicas of the base's pretraining (2 uses both cores of a 2-core machine)").default(d.replicas).argParser(positiveInt('--replicas')))
    .addOption(new Option('--demonstrations <n>', 'worked examples per task that SFT learns from (RL draws fresh problems and needs no answers written out)').default(d.demonstrations).argParser(positiveInt('--demonstrations')))
    .addOption(new Option('--eval-examples <n>', 'held-out problems per task that every model is scored on').default(d.evalExamples).argParser(positiveInt('--eval-examples')))
    .addOption(new Option('--few-shot <n>', "solved examples in the base's plain-text prompt").default(d.fewShot).argParser(nonNegativeInt('--few-shot')))
    .addOption(new Option('--seed <n>', 'random seed of every stage and of the held-out problems').default(d.seed).argParser(nonNegativeInt('--seed')))
    .action(async (o: Record<string, unknown>) => {
      let progress: RunProgress<unknown> | null = null;
      let started = 0;
      const result = await pipeline(
        {
          name: o.name as string,
          outDir: o.outDir as string,
          tasks: String(o.tasks).split(',').map((t) => t.trim()).filter(Boolean),
          baseData: o.baseData as string,
          dataDir: (o.dataDir as string | undefined) ?? dataDirEnv() ?? null,
          replicas: o.replicas as number,
          time: { base: o.baseTime as number, sft: o.sftTime as number, rl: o.rlTime as number, dpo: o.dpoTime as number },
          demonstrations: o.demonstrations as number,
          evalExamples: o.evalExamples as number,
          fewShot: o.fewShot as number,
          seed: o.seed as number,
        },
        {
          // Ctrl-C reaches the current stage's progress: it saves a checkpoint and the pipeline stops.
          shouldStop: () => progress?.interrupted() ?? false,
          commands: [['tensorlm', ...process.argv.slice(2)].map(quote).join(' ')],
          hooks: {
            onStageStart: (stage, { dir, resumed }) => {
              started = performance.now();
              progress = runProgress(({ parameters, startStep }) => [
                // No step count: a time-budgeted stage plans it after its first steps (and says so).
                `\n== ${stage}: ${resumed ? `resuming at step ${startStep}` : 'starting'} in ${dir} (${parameters.toLocaleString('en-US')} parameters) ==`,
              ]);
              return progress.hooks;
            },
            onStageEnd: (stage, outcome) => {
              progress?.stop();
              progress = null;
              const how = outcome.stoppedEarly === 'interrupted' ? 'stopped' : 'finished';
              console.log(`== ${stage}: ${how} at step ${outcome.step} after ${formatSeconds((performance.now() - started) / 1000)}; val loss ${outcome.finalValLoss?.toFixed(4) ?? '–'} ==`);
            },
            onStageSkip: (stage, dir) => console.log(`== ${stage}: already finished in ${dir}; skipped ==`),
            onScoring: (stage) => console.log(`scoring ${stage} on the held-out problems…`),
          },
        },
      );
      if (result.interrupted !== null) {
        console.log(`stopped during ${result.interrupted}; its checkpoint is saved. Rerun the same command to continue.`);
        return;
      }
      console.log(`\nreport card: ${result.written.join(', ')}\n`);
      if (result.report) console.log(stageTable(result.report));
    });
}
