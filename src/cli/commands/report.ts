/** `tensorlm report`: a run's report card (report.md, report.json, report-loss.svg), over src/evals/report.ts. */
import { Command, Option } from 'commander';
import { writeRunReport } from '../../evals/report.js';
import { nonNegativeInt, positiveInt } from '../args.js';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description("a report card for one run, like nanochat's report.md: machine, config, data, throughput, losses, loss curves, task evaluations and samples (report.md, report.json and report-loss.svg in the run directory)")
    .requiredOption('--run <dir>', 'run directory, e.g. runs/shakespeare-char')
    .option('--out <file>', 'write the markdown here instead of <run>/report.md (the JSON and the SVG go beside it)')
    .option('--eval', "measure the best checkpoint on the whole validation split (loss, perplexity, bits per char/token) instead of quoting the run's last evaluation")
    .option('--data-dir <dir>', 'cache directory for named datasets (with --eval)')
    .addOption(new Option('--samples <n>', 'fresh samples from the best checkpoint (seeds 1..n, temperature 0.8)').default(0).argParser(nonNegativeInt('--samples')))
    .addOption(new Option('--sample-tokens <n>', 'tokens of each fresh sample').default(200).argParser(positiveInt('--sample-tokens')))
    .option('--prompt <text>', 'prompt of the fresh samples (default: a newline)', '')
    .action(async (o: Record<string, unknown>) => {
      const { paths } = await writeRunReport(o.run as string, {
        out: o.out as string | undefined,
        evaluate: o.eval === true,
        dataDir: (o.dataDir as string | undefined) ?? null,
        samples: o.samples as number,
        sampleTokens: o.sampleTokens as number,
        samplePrompt: o.prompt as string,
      });
      console.log(`wrote ${paths.markdown}, ${paths.json}, ${paths.svg}`);
      console.log(`report card: ${paths.markdown}`);
    });
}
