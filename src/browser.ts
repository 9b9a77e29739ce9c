/**
 * TensorLM for browsers and Web Workers: the library without the file system, native code or
 * Node globals. It installs the WebAssembly backend (js is always there), which becomes the
 * default on the first kernel call — there is no BLAS in a browser — and it never touches
 * `process` or `node:*` at run time. (Imported in Node it works too, on the same backends.)
 *
 * Nothing below tensor/ registers backends at import, so no module of this graph pulls in the
 * Node installer (koffi, the BLAS loader): a bundler needs no mapping for it.
 *
 * What needs files has a bytes form here: `parseSafetensors` / `serializeSafetensors` read and
 * write a `.safetensors` file held in memory (fetched, picked, downloaded), `tokenizerFromJSON`
 * rebuilds a tokenizer from its parsed JSON. The Node-only functions some modules still carry
 * (`TransformerLM.loadSafetensors(path)`, `CharTokenizer.load(path)` …) import `node:fs`; a bundler
 * has to map those imports to a stub (web/playground/vite.config.ts does) and calling them throws.
 *
 * The WASM kernels compile synchronously (`new WebAssembly.Module`), which browsers may refuse on
 * the main thread for modules this size, and training blocks its thread: import this from a Web
 * Worker. GEMMs run on one thread
 * (the threaded GEMM needs Node's worker_threads).
 */
import { installBrowserBackends } from './backends/browser.js';
import { setBackendInstaller } from './backends/registry.js';

// Only names the installer: the wasm kernels compile on the first kernel call, not at import.
setBackendInstaller(installBrowserBackends);

export { setBackend, getBackend, listBackends, registerBackend, fastestBackend, referenceKernels, setBackendInstaller, type BackendInstaller } from './backends/registry.js';
export { wasmInfo, wasmKernels, setWasmThreads, getWasmThreads, type WasmInfo, type WasmSimdVariant } from './backends/wasm/index.js';
export { setNumThreads, getNumThreads } from './backends/browser.js';
export type { Kernels } from './backends/kernels.js';

export { Tensor, type TensorLike, type NestedArray, type MaxResult } from './tensor/tensor.js';
export type { DType, TypedArray } from './tensor/dtype.js';
export type { Shape } from './tensor/shape.js';
export * from './tensor/creation.js';
export { Generator, manualSeed, defaultGenerator, type GeneratorState } from './tensor/random.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled } from './autograd/grad-mode.js';
export * as nn from './nn/index.js';
export * as F from './nn/functional.js';
export * as optim from './optim/index.js';
export { AdamW, Adam, SGD, clipGradNorm, warmupCosineLr, warmupConstantLr, WarmupCosineLR } from './optim/index.js';

export { TransformerLM, type GenerateOptions, type LMOutput } from './models/transformer.js';
export { resolveConfig, type TransformerConfig, type TransformerConfigInput, type TransformerConfigOverrides } from './models/config.js';
export { getPreset, presetConfig, presetNames, listPresets, type Preset } from './models/presets.js';
export { countParameters } from './models/params.js';
export { muParamGroups } from './models/mup.js';
export { sampleNext, sampleToken, argmax, type SamplingOptions } from './models/sampling.js';

export { CharTokenizer, type CharTokenizerJSON } from './tokenizers/char.js';
export { BPETokenizer, type BPETokenizerJSON } from './tokenizers/bpe.js';
export { tokenizerFromJSON } from './tokenizers/load.js';
export type { Tokenizer } from './tokenizers/tokenizer.js';

export {
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
  serializeModuleSafetensors,
  loadModuleSafetensorsBytes,
  loadModuleFromSafetensors,
  checkpointModelName,
  huggingFaceLlamaName,
  type LoadedSafetensors,
  type LoadModuleOptions,
  type SafetensorsBytes,
  type SafetensorsDType,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from './io/safetensors-bytes.js';

export {
  TextTrainer,
  resolveLoopConfig,
  loopPreset,
  LOOP_PRESETS,
  DEFAULT_LOOP_CONFIG,
  type LoopConfig,
  type LoopPreset,
  type StepRecord,
  type EvalRecord,
} from './train/browser-loop.js';
export { generateText, streamText, generateTexts, streamTexts, type TextGenerationOptions, type BatchTextGenerationOptions, type BatchTextChunk, type GeneratedText, type TextChunk } from './models/generate.js';
export { buildModelConfig } from './models/presets.js';
