/** Messages between the playground page (main.ts) and its training worker (trainer-worker.ts). */

/** Training settings the page sends; the worker resolves them over the preset's defaults. */
export interface TrainSettings {
  /** A playground preset: 'tiny', 'micro' or 'nano' (src/train/browser-loop.ts). */
  preset: string;
  maxSteps: number;
  lr: number;
  batchSize: number;
  blockSize: number;
  evalInterval: number;
  warmupSteps?: number;
  seed?: number;
}

export type ToWorker =
  | { type: 'start'; text: string; settings: TrainSettings }
  | { type: 'stop' }
  | { type: 'resume' }
  | { type: 'sample'; prompt: string; maxNewTokens: number; temperature: number; topK: number | null; seed: number }
  /** A CLI run's config.json ({train, model}, or a bare model config), tokenizer.json and a .safetensors file. */
  | { type: 'load-model'; config: unknown; tokenizer: unknown; weights: ArrayBuffer; name: string };

/** A model size the page offers (src/train/browser-loop.ts LOOP_PRESETS). */
export interface PresetInfo {
  name: string;
  description: string;
  batchSize: number;
  blockSize: number;
}

export type TrainState = 'idle' | 'training' | 'stopped' | 'done' | 'error';

export interface ModelSummary {
  /** Where it came from: trained here, or loaded (with the file name). */
  source: 'trained' | 'loaded';
  name: string;
  parameters: number;
  vocabSize: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  maxSeqLen: number;
}

export type FromWorker =
  | { type: 'ready'; backend: string; variant: string | null; reason: string | null; presets: PresetInfo[] }
  | {
      type: 'started';
      model: ModelSummary;
      trainTokens: number;
      valTokens: number;
      maxSteps: number;
      tokensPerStep: number;
    }
  | { type: 'step'; step: number; loss: number; lr: number; tokensPerSecond: number; stepSeconds: number; trainSeconds: number }
  | { type: 'eval'; step: number; trainLoss: number; valLoss: number; sample?: string }
  | { type: 'state'; state: TrainState; step: number }
  | { type: 'sample-progress'; text: string; tokens: number }
  | { type: 'sample'; prompt: string; text: string; tokens: number[]; seconds: number; model: ModelSummary }
  | { type: 'loaded'; model: ModelSummary; checkpoint: { step: number | null; bestValLoss: number | null; verified: boolean | null } }
  | { type: 'error'; message: string; during: 'train' | 'sample' | 'load' | 'start' };
