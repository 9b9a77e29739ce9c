import { InvalidArgumentError, type Command } from 'commander';
import { isRecurrentConfig, type TransformerConfigInput } from '../../models/config.js';
import { describeModel, estimateMemory, countParameters, kvCacheBytes } from '../../models/params.js';
import { getPreset, presetNames } from '../../models/presets.js';

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive integer, got '${value}'`);
  return n;
}

/** `tensorlm params --preset NAME [--batch B --seq T --dtype fp32|bf16] [--json]` */
export function registerParamsCommand(program: Command): void {
  program
    .command('params')
    .description('exact parameter count, per-component breakdown and training-memory estimate of a model preset (no weights are allocated)')
    .requiredOption('--preset <name>', `model preset (${presetNames.join(', ')})`)
    .option('--batch <B>', 'batch size for the memory estimate', (v) => positiveInt(v, '--batch'), 1)
    .option('--seq <T>', 'sequence length for the memory estimate (default: the preset maxSeqLen)', (v) => positiveInt(v, '--seq'))
    .option('--dtype <dtype>', "training precision: 'fp32', or 'bf16' (mixed, fp32 master weights)", 'fp32')
    .option('--json', 'print machine-readable JSON')
    .action((opts: { preset: string; batch: number; seq?: number; dtype: string; json?: boolean }) => {
      if (opts.dtype !== 'fp32' && opts.dtype !== 'bf16') throw new Error(`--dtype must be 'fp32' or 'bf16', got '${opts.dtype}'`);
      const preset = getPreset(opts.preset);
      const memory = { batch: opts.batch, seq: opts.seq, dtype: opts.dtype as 'fp32' | 'bf16' };
      if (opts.json) {
        const kvCache = isRecurrentConfig(preset.config) ? undefined : kvCacheBytes(preset.config as TransformerConfigInput);
        console.log(JSON.stringify({ preset: preset.name, parameters: countParameters(preset.config), memory: estimateMemory(preset.config, memory), kvCache }, null, 2));
      } else {
        console.log(describeModel(preset.name, preset.config, memory));
      }
    });
}
