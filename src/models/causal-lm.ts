/**
 * What TransformerLM and RecurrentLM share: generation to a tensor on top of each model's own
 * token stream (`generateStream`: a KV cache, or a carried state), and weights in and out of
 * safetensors with the config in the metadata.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { loadModuleSafetensors, saveModuleSafetensors, type LoadModuleOptions } from '../io/safetensors.js';
import { Module, type LoadStateDictResult } from '../nn/module.js';
import { cat } from '../ops/indexing.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';

export abstract class CausalLM<In extends unknown[], Out, G> extends Module<In, Out> {
  abstract readonly config: object;

  /** The new token of every row at each step after ids [B, T] (or [T]). */
  abstract generateStream(ids: Tensor, options: G): IterableIterator<Int32Array>;

  /** ids [B, T] (or [T]) followed by the generated tokens: [B, T + maxNewTokens] (or [T + n]). */
  generate(ids: Tensor, options: G): Tensor {
    const context = ids.ndim === 1 ? ids.unsqueeze(0) : ids;
    const b = context.shape[0];
    const steps: Tensor[] = [];
    for (const next of this.generateStream(ids, options)) steps.push(tensor(Int32Array.from(next), { shape: [b, 1] }));
    const out = steps.length > 0 ? noGrad(() => cat([context, ...steps], 1)) : context;
    return ids.ndim === 1 ? out.squeeze(0) : out;
  }

  /**
   * Loads weights by state-dict name from a .safetensors file (F32, or F16/BF16/F64 converted);
   * `rename: huggingFaceLlamaName` reads Hugging Face Llama checkpoints into a TransformerLM. Each
   * tensor is read straight into its parameter (loadModuleSafetensors): no second copy of the weights.
   */
  loadSafetensors(path: string, options: LoadModuleOptions = {}): LoadStateDictResult {
    return loadModuleSafetensors(this, path, options);
  }

  /** Saves the weights as F32 safetensors, atomically; the config goes into the metadata. */
  saveSafetensors(path: string, metadata: Readonly<Record<string, string>> = {}): void {
    saveModuleSafetensors(this, path, { config: JSON.stringify(this.config), ...metadata });
  }
}
