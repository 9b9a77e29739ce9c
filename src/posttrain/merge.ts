/**
 * LoRA runs out of the run directory: the adapters on their own (`adapter.safetensors`, PEFT's
 * adapter_model.safetensors: only the loraA/loraB tensors, the LoRA configuration in its metadata)
 * and a merged copy of the run (`tensorlm merge`: W + (α/r)·B·A folded into every adapted layer,
 * PEFT's merge_and_unload), which loads as a plain model without LoRA layers.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { loadLoRAStateDict, loraConfig, loraStateDict, mergeLoRA, type LoRAConfig } from '../nn/lora.js';
import type { AnyModule } from '../nn/module.js';
import { AdamW } from '../optim/adam.js';
import { saveCheckpoint } from '../train/checkpoint.js';
import { prepareRunDirectory, runFiles, type RunFiles } from '../train/run-loop.js';
import { loadTransformerRun, type RunConfig } from '../train/trainer.js';

/** The adapter file of a run directory. */
export const ADAPTER_FILE = 'adapter.safetensors';

/** Writes a model's LoRA adapters (only them) with their configuration in the metadata, atomically. */
export function saveAdapter(model: AnyModule, path: string, config: LoRAConfig): void {
  const tensors = loraStateDict(model);
  if (Object.keys(tensors).length === 0) throw new Error(`saveAdapter: the model has no LoRA layers to save to ${path}`);
  saveSafetensors(path, tensors, { format: 'tensorlm-lora/1', lora: JSON.stringify(loraConfig(config)) });
}

/** Loads adapters saved by saveAdapter into a model that has the same LoRA layers (strict). */
export function loadAdapter(model: AnyModule, path: string): LoRAConfig {
  const file = loadSafetensors(path);
  const text = file.metadata.lora;
  if (text === undefined) throw new Error(`${path} is not a TensorLM LoRA adapter (no 'lora' metadata)`);
  loadLoRAStateDict(model, file.tensors);
  return loraConfig(JSON.parse(text));
}

/**
 * A copy of a LoRA run with the adapters folded into the weights: a run directory at
 * `outDir/name` whose config has no LoRA and whose best and latest checkpoints hold the merged
 * model (no optimizer state: it is a model to use or to fine-tune afresh, not a run to resume).
 * The merged logits equal the adapted ones up to float32 rounding.
 */
export function mergeRun(runDir: string, outDir: string, name: string): { files: RunFiles; merged: string[] } {
  const run = loadTransformerRun(runDir, 'best', 'merge');
  if (!run.config.lora) throw new Error(`merge: ${runDir} has no LoRA adapters (its config.json has no 'lora'); nothing to merge`);
  const files = runFiles(outDir, name);
  if (existsSync(files.latest)) throw new Error(`merge: ${files.dir} already holds a run; choose another --name`);
  const merged = mergeLoRA(run.model);
  for (const p of run.model.parameters()) p.requiresGrad = true;
  const runConfig: RunConfig & { mergedFrom: string } = { ...run.config, lora: null, mergedFrom: runDir };
  prepareRunDirectory(files, runConfig, run.tokenizer, false);
  const meta = { ...run.meta, config: runConfig };
  const optimizer = new AdamW(run.model.parameters());
  saveCheckpoint(files.best, run.model, optimizer, meta);
  saveCheckpoint(files.latest, run.model, optimizer, meta);
  return { files, merged };
}

/** Where a LoRA run keeps its adapters. */
export function adapterPath(runDir: string): string {
  return join(runDir, ADAPTER_FILE);
}
