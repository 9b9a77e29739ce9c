/**
 * Looking inside a trained model: the attention probabilities of every layer and head for one
 * sequence (what the dashboard's attention view draws). A forward hook on each layer's
 * `attn.attnDropout` module sees the probabilities; the hooks exist only during the call, so normal
 * forward passes pay nothing for them (src/nn/module.ts).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { tensor } from '../tensor/creation.js';
import type { TransformerLM } from './transformer.js';
import { layerKinds } from './config.js';

export interface AttentionMaps {
  /** Sequence length T. */
  tokens: number;
  nLayers: number;
  nHeads: number;
  /**
   * One array per layer, row-major [nHeads, T, T]: entry (h, i, j) is how much query position i
   * attends to key position j in head h. Causal: zero for j > i; each row sums to 1.
   */
  layers: Float32Array[];
}

/**
 * Runs `ids` (one sequence of token ids, 1..maxSeqLen long) through the model in eval mode without
 * gradients and returns each layer's attention probabilities. The modules' train/eval modes are
 * restored afterwards.
 */
export function attentionMaps(model: TransformerLM, ids: ArrayLike<number>): AttentionMaps {
  const { nLayers, nHeads, maxSeqLen, vocabSize } = model.config;
  const t = ids.length;
  if (t < 1 || t > maxSeqLen) throw new RangeError(`attentionMaps: ids must hold 1 to ${maxSeqLen} tokens (the model's maxSeqLen), got ${t}`);
  for (let i = 0; i < t; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new RangeError(`attentionMaps: ids[${i}] = ${id} is not a token id in [0, ${vocabSize})`);
  }
  if (layerKinds(model.config).includes('mamba')) throw new Error("attentionMaps: the model has 'mamba' layers, which have no attention probabilities");
  const layers: (Float32Array | null)[] = Array.from({ length: nLayers }, () => null);
  const modes = model.modules().map((m) => [m, m.training] as const);
  model.eval();
  // The module's input: the probabilities before dropout (in eval mode its output is the same tensor).
  const handles = Array.from(model.layers, (_, i) =>
    model.block(i).attn.attnDropout.registerForwardHook((_module, [probs]) => {
      layers[i] = Float32Array.from(probs.contiguous().toTypedArray() as Float32Array);
    }),
  );
  try {
    noGrad(() => model.hidden(tensor(Int32Array.from(ids), { shape: [1, t] })));
  } finally {
    for (const handle of handles) handle.remove();
    for (const [m, training] of modes) m.training = training;
  }
  return {
    tokens: t,
    nLayers,
    nHeads,
    layers: layers.map((l, i) => {
      if (!l) throw new Error(`attentionMaps: layer ${i} recorded no attention probabilities`);
      return l;
    }),
  };
}
