/**
 * The language models a run can hold — a TransformerLM or a RecurrentLM — and the one place that
 * builds either from its config. The training core, evaluation, sampling and checkpoints take a
 * LanguageModel; what only a transformer has (KV-cache chat, attention maps, μP, LoRA, the
 * post-training stages) loads its run with `loadTransformerRun` (train/trainer.ts), which names what is missing.
 */
import { isRecurrentConfig, type ModelConfig, type ModelConfigInput } from './config.js';
import { RecurrentLM } from './recurrent.js';
import { TransformerLM } from './transformer.js';
import type { Generator } from '../tensor/random.js';

export type LanguageModel = TransformerLM | RecurrentLM;

export interface LanguageModelOptions {
  /** Draws the initial weights (the default generator otherwise). */
  generator?: Generator;
  /** Draws the dropout masks (the default generator otherwise). */
  dropoutGenerator?: Generator;
}

/** The model a config describes: a RecurrentLM when it names an `arch`, else a TransformerLM. */
export function createLanguageModel(config: ModelConfigInput | ModelConfig, options: LanguageModelOptions = {}): LanguageModel {
  return isRecurrentConfig(config) ? new RecurrentLM(config, options) : new TransformerLM(config, options);
}
