/**
 * The playground's Web Worker: all of TensorLM runs here, on the WebAssembly backend, so the page
 * stays responsive while a step computes. Training runs one step per task and yields between
 * steps, so stop, sample and load messages are handled within a step's time.
 */
import {
  checkpointModelName,
  getBackend,
  loadModuleFromSafetensors,
  loopPreset,
  LOOP_PRESETS,
  parseSafetensors,
  streamText,
  TextTrainer,
  tokenizerFromJSON,
  TransformerLM,
  wasmInfo,
  type LoadedSafetensors,
  type Tokenizer,
} from '../../src/browser.js';
import { selfDigestInput } from '../../src/io/safetensors-bytes.js';
import type { FromWorker, ModelSummary, ToWorker, TrainState } from './protocol.js';

const scope = self as unknown as { postMessage(m: FromWorker): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null };
const post = (m: FromWorker) => scope.postMessage(m);
/** Tokens between the sample's progress messages. */
const SAMPLE_PROGRESS_EVERY = 8;

let trainer: TextTrainer | null = null;
/** The training loop now running (its stop flag), or null. */
let current: { stopped: boolean } | null = null;
let state: TrainState = 'idle';
/** The model that Sample uses: the one trained last, or the one loaded last. */
let active: { model: TransformerLM; tokenizer: Tokenizer; summary: ModelSummary } | null = null;

function summary(model: TransformerLM, source: ModelSummary['source'], name: string): ModelSummary {
  const c = model.config;
  return { source, name, parameters: model.numParameters(), vocabSize: c.vocabSize, dModel: c.dModel, nLayers: c.nLayers, nHeads: c.nHeads, maxSeqLen: c.maxSeqLen };
}

function setState(s: TrainState): void {
  state = s;
  post({ type: 'state', state: s, step: trainer?.step ?? 0 });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Lets queued messages (stop, sample, load) run: a zero-delay task without setTimeout's 4 ms clamp. */
const yieldChannel = new MessageChannel();
const yieldWaiters: (() => void)[] = [];
yieldChannel.port1.onmessage = () => yieldWaiters.shift()?.();
function yieldToMessages(): Promise<void> {
  return new Promise((resolve) => {
    yieldWaiters.push(resolve);
    yieldChannel.port2.postMessage(null);
  });
}

async function runLoop(): Promise<void> {
  const t = trainer;
  if (!t || current) return;
  const run = { stopped: false };
  current = run;
  setState('training');
  try {
    while (!run.stopped && !t.done && trainer === t) {
      const r = t.trainStep();
      post({ type: 'step', step: r.step, loss: r.loss, lr: r.lr, tokensPerSecond: r.tokensPerSecond, stepSeconds: r.stepSeconds, trainSeconds: t.trainSeconds });
      if (t.evalDue()) post({ type: 'eval', ...t.evaluate() });
      await yieldToMessages();
    }
    if (trainer === t) setState(t.done ? 'done' : 'stopped');
  } catch (error) {
    post({ type: 'error', message: message(error), during: 'train' });
    setState('error');
  } finally {
    if (current === run) current = null;
  }
}

function start(text: string, settings: Extract<ToWorker, { type: 'start' }>['settings']): void {
  // A loop still running sees the trainer change and ends at its next step.
  if (current) current.stopped = true;
  current = null;
  const p = loopPreset(settings.preset);
  const warmup = settings.warmupSteps ?? Math.min(50, Math.floor(settings.maxSteps / 10));
  trainer = new TextTrainer(text, {
    preset: p.preset,
    model: p.model,
    batchSize: settings.batchSize,
    blockSize: settings.blockSize,
    maxSteps: settings.maxSteps,
    lr: settings.lr,
    minLr: settings.lr / 10,
    warmupSteps: warmup,
    evalInterval: settings.evalInterval,
    seed: settings.seed ?? 1337,
  });
  const s = summary(trainer.model, 'trained', `${settings.preset} (trained here)`);
  active = { model: trainer.model, tokenizer: trainer.tokenizer, summary: s };
  post({ type: 'started', model: s, trainTokens: trainer.train.length, valTokens: trainer.val.length, maxSteps: trainer.config.maxSteps, tokensPerStep: trainer.tokensPerStep });
  void runLoop();
}

/** SHA-256 (hex) of bytes, or null without WebCrypto. */
async function sha256Hex(bytes: Uint8Array): Promise<string | null> {
  const subtle = (globalThis.crypto as Crypto | undefined)?.subtle;
  if (!subtle) return null;
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The SHA-256 a TensorLM checkpoint of format /1 records over its tensors (train/checkpoint.ts dataHash), or null without WebCrypto. */
async function checkpointHash(tensors: LoadedSafetensors['tensors']): Promise<string | null> {
  const subtle = (globalThis.crypto as Crypto | undefined)?.subtle;
  if (!subtle) return null;
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name].contiguous();
    const bpe = t.storage.BYTES_PER_ELEMENT;
    parts.push(encoder.encode(name), new Uint8Array(t.storage.buffer, t.storage.byteOffset + t.offset * bpe, t.size * bpe));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await subtle.digest('SHA-256', all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function load(m: Extract<ToWorker, { type: 'load-model' }>): Promise<void> {
  const config = m.config as { model?: unknown } | null;
  if (config === null || typeof config !== 'object') throw new Error('config.json: expected a JSON object');
  // A run's config.json is {train, model}; a bare model config works too.
  const modelConfig = ('model' in config && config.model && typeof config.model === 'object' ? config.model : config) as ConstructorParameters<typeof TransformerLM>[0];
  const tokenizer = tokenizerFromJSON(m.tokenizer);
  const model = new TransformerLM(modelConfig);
  if (tokenizer.vocabSize > model.config.vocabSize) throw new Error(`tokenizer.json has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}`);
  const loaded = parseSafetensors(m.weights, { label: m.name });
  // Format /2 records a SHA-256 of the whole file (train/checkpoint.ts); /1 one of the tensors only.
  const format = loaded.metadata.format;
  const isCheckpoint = format === 'tensorlm-checkpoint/1' || format === 'tensorlm-checkpoint/2';
  let verified: boolean | null = null;
  if (format === 'tensorlm-checkpoint/2') {
    const input = selfDigestInput(m.weights, 'fileSha256');
    const hash = input === null ? 'missing' : await sha256Hex(input);
    if (hash !== null) {
      verified = hash === loaded.metadata.fileSha256;
      if (!verified) throw new Error(`${m.name} is corrupted: its content does not match the checksum recorded when it was written`);
    }
  } else if (isCheckpoint && loaded.metadata.dataSha256) {
    const hash = await checkpointHash(loaded.tensors);
    if (hash !== null) {
      verified = hash === loaded.metadata.dataSha256;
      if (!verified) throw new Error(`${m.name} is corrupted: its data does not match the checksum recorded when it was written`);
    }
  }
  loadModuleFromSafetensors(model, loaded, { rename: isCheckpoint ? checkpointModelName : undefined }, m.name);
  model.eval();
  let step: number | null = null;
  let bestValLoss: number | null = null;
  if (isCheckpoint && loaded.metadata.meta) {
    try {
      const meta = JSON.parse(loaded.metadata.meta) as { step?: number; bestValLoss?: number | null };
      step = meta.step ?? null;
      bestValLoss = meta.bestValLoss ?? null;
    } catch {
      // metadata is informational here
    }
  }
  const s = summary(model, 'loaded', m.name);
  active = { model, tokenizer, summary: s };
  post({ type: 'loaded', model: s, checkpoint: { step, bestValLoss, verified } });
}

function sample(m: Extract<ToWorker, { type: 'sample' }>): void {
  if (!active) throw new Error('no model yet: train one or load one first');
  const { model, tokenizer, summary: s } = active;
  const t0 = performance.now();
  const stream = streamText(model, tokenizer, m.prompt, { maxNewTokens: m.maxNewTokens, temperature: m.temperature, topK: m.topK, seed: m.seed });
  let text = '';
  for (;;) {
    const next = stream.next();
    if (next.done) {
      post({ type: 'sample', prompt: m.prompt, text: next.value.text, tokens: next.value.tokens, seconds: (performance.now() - t0) / 1000, model: s });
      return;
    }
    text += next.value.text;
    // The page shows the text growing, a few tokens at a time.
    if ((next.value.index + 1) % SAMPLE_PROGRESS_EVERY === 0) post({ type: 'sample-progress', text, tokens: next.value.index + 1 });
  }
}

scope.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'start':
      try {
        start(m.text, m.settings);
      } catch (error) {
        post({ type: 'error', message: message(error), during: 'start' });
        setState(trainer ? state : 'idle');
      }
      break;
    case 'stop':
      if (current) current.stopped = true;
      break;
    case 'resume':
      // A stop not yet acted on (the loop is between steps) is simply withdrawn.
      if (current) current.stopped = false;
      else if (trainer && !trainer.done) void runLoop();
      break;
    case 'sample':
      try {
        sample(m);
      } catch (error) {
        post({ type: 'error', message: message(error), during: 'sample' });
      }
      break;
    case 'load-model':
      load(m).catch((error: unknown) => post({ type: 'error', message: message(error), during: 'load' }));
      break;
  }
};

const info = wasmInfo();
post({
  type: 'ready',
  backend: getBackend(),
  variant: info.variant,
  reason: info.reason,
  presets: LOOP_PRESETS.map((p) => ({ name: p.name, description: p.description, batchSize: p.batchSize, blockSize: p.blockSize })),
});
