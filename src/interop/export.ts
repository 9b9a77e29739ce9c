/** Exports of a run directory in the formats that have no folder of their own (GGUF). */
import { existsSync } from 'node:fs';
import { loadTransformerRun } from '../train/trainer.js';
import { writeGguf, type GgufTensorType } from './gguf.js';

/** `tensorlm export --format gguf`: a run's checkpoint (best by default) as one GGUF file. */
export function exportGguf(runDir: string, out: string, options: { type?: GgufTensorType; which?: 'best' | 'latest'; name?: string } = {}): ReturnType<typeof writeGguf> {
  const run = loadTransformerRun(runDir, options.which ?? 'best', 'export');
  if (run.config.lora) throw new Error(`${runDir} carries LoRA adapters; merge them first (tensorlm merge --run ${runDir}) and export the merged run`);
  if (existsSync(out)) throw new Error(`${out} already exists; choose another --out`);
  return writeGguf(out, run.model.stateDict(), run.model.config, run.tokenizer, { type: options.type, name: options.name ?? run.config.train.name });
}
