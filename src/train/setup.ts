/**
 * How a training run builds its model and optimizer from a config — shared by the CLI trainer
 * (trainer.ts) and the in-memory loop (browser-loop.ts), so the same settings give the same
 * weights, batches and updates in both. No Node APIs: the browser bundle imports it.
 */
import type { ModelConfig } from '../models/config.js';
import { createLanguageModel, type LanguageModel } from '../models/language-model.js';
import { muParamGroups } from '../models/mup.js';
import { TransformerLM } from '../models/transformer.js';
import { AdamW } from '../optim/adam.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TrainConfig } from './config.js';

/** Sampling temperature of the samples shown during and after training. */
export const SAMPLE_TEMPERATURE = 0.8;

export interface RunGenerators {
  init: Generator;
  data: Generator;
  dropout: Generator;
}

/** Each purpose gets its own stream derived from the run seed: init, data order, dropout. */
export function runGenerators(seed: number): RunGenerators {
  return { init: new Generator(seed), data: new Generator(seed + 1), dropout: new Generator(seed + 2) };
}

/**
 * The model (in training mode) and its AdamW: matrices decay, biases and norm gains do not
 * (nanoGPT); under μP the hidden matrices get their own groups at lr/m (models/mup.ts).
 */
export function buildTrainingSetup(
  config: Pick<TrainConfig, 'seed' | 'lr' | 'weightDecay' | 'beta1' | 'beta2'>,
  modelConfig: ModelConfig,
): { model: LanguageModel; optimizer: AdamW; generators: RunGenerators } {
  const generators = runGenerators(config.seed);
  const model = createLanguageModel(modelConfig, { generator: generators.init, dropoutGenerator: generators.dropout });
  model.train();
  return { model, optimizer: modelOptimizer(model, config), generators };
}

/**
 * AdamW over the parameters of `model` that train (all of them, or a LoRA model's adapters and
 * its grown embedding): matrices decay, biases and norm gains do not (nanoGPT); under μP the
 * hidden matrices get their own groups at lr/m (models/mup.ts). Pretraining and every
 * post-training stage build their optimizer here.
 */
export function modelOptimizer(model: LanguageModel, config: Pick<TrainConfig, 'lr' | 'weightDecay' | 'beta1' | 'beta2'>): AdamW {
  const groups = (model instanceof TransformerLM ? muParamGroups(model, { lr: config.lr, weightDecay: config.weightDecay }) : standardGroups(model, config)).flatMap((g) => {
    const params = g.params.filter((p) => p.requiresGrad);
    // A group that frozen parameters emptied goes; the standard pair stays as muParamGroups makes it.
    return params.length > 0 || g.params.length === 0 ? [{ ...g, params }] : [];
  });
  return new AdamW(groups, { lr: config.lr, betas: [config.beta1, config.beta2], weightDecay: config.weightDecay });
}

/** A model without μP: matrices (embedding, recurrent and head weights) decay, vectors (biases) do not. */
function standardGroups(model: LanguageModel, config: Pick<TrainConfig, 'lr' | 'weightDecay'>): { params: Tensor[]; lr: number; lrScale: number; weightDecay: number }[] {
  const decay = { params: [] as Tensor[], lr: config.lr, lrScale: 1, weightDecay: config.weightDecay };
  const noDecay = { params: [] as Tensor[], lr: config.lr, lrScale: 1, weightDecay: 0 };
  for (const p of model.parameters()) (p.ndim >= 2 ? decay : noDecay).params.push(p);
  return [decay, noDecay];
}
