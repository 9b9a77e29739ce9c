/**
 * What the dashboard computes with a run's model: streamed generation and attention maps. Models
 * are loaded with the library's loadRun and cached per (run, checkpoint file, its mtime), so a
 * checkpoint rewritten by a training run in progress is picked up on the next request.
 */
import { statSync } from 'node:fs';
import { attentionMaps } from '../models/inspect.js';
import type { TransformerLM } from '../models/transformer.js';
import { promptIds, streamText, type TextChunk } from '../models/generate.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadRun } from '../train/trainer.js';
import { HttpError, MAX_ATTENTION_TOKENS, type CheckpointChoice, type GenerateRequest } from './requests.js';
import { runFile, type RunEntry } from './runs.js';
import type { SseStream } from './sse.js';

export interface LoadedModel {
  model: TransformerLM;
  tokenizer: Tokenizer;
  /** The checkpoint actually loaded (the other one when the requested one does not exist). */
  checkpoint: CheckpointChoice;
}

/** A few loaded models, least recently used dropped first (a tiny preset is ~10 MB of weights). */
export class ModelCache {
  readonly #entries = new Map<string, LoadedModel>();

  constructor(readonly capacity = 4) {}

  get(run: RunEntry, wanted: CheckpointChoice): LoadedModel {
    const other: CheckpointChoice = wanted === 'best' ? 'latest' : 'best';
    let which = wanted;
    let path = runFile(run, `${wanted}.safetensors`);
    if (path === null) {
      which = other;
      path = runFile(run, `${other}.safetensors`);
    }
    if (path === null) throw new HttpError(409, `run '${run.name}' has no checkpoint yet (best.safetensors or latest.safetensors); wait for its first evaluation`);
    for (const file of ['config.json', 'tokenizer.json'] as const) {
      if (runFile(run, file) === null) throw new HttpError(409, `run '${run.name}' has no ${file}; it was not written by 'tensorlm train'`);
    }
    const st = statSync(path);
    const key = `${run.dir}\0${which}\0${st.ino}:${st.size}:${st.mtimeMs}`;
    const hit = this.#entries.get(key);
    if (hit) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit;
    }
    let loaded: LoadedModel;
    try {
      const { model, tokenizer } = loadRun(run.dir, which);
      loaded = { model, tokenizer, checkpoint: which };
    } catch (error) {
      throw new HttpError(500, `could not load the ${which} checkpoint of run '${run.name}': ${(error as Error).message}`);
    }
    // Older versions of the same checkpoint are stale now.
    for (const k of this.#entries.keys()) if (k.startsWith(`${run.dir}\0${which}\0`)) this.#entries.delete(k);
    this.#entries.set(key, loaded);
    while (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value as string);
    return loaded;
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** The prompt's token ids; a prompt the tokenizer cannot encode is the client's error. */
function encodePrompt(tokenizer: Tokenizer, prompt: string): number[] {
  try {
    return tokenizer.encode(prompt);
  } catch (error) {
    throw new HttpError(400, `prompt cannot be encoded by this run's tokenizer: ${(error as Error).message}`);
  }
}

/** The context to continue (models/generate.ts's promptIds), with an unencodable prompt as a 400. */
export function generationContext(tokenizer: Tokenizer, prompt: string): number[] {
  if (prompt !== '') encodePrompt(tokenizer, prompt);
  return promptIds(tokenizer, prompt);
}

/**
 * Streams `event: token` {text, index} per generated token (models/generate.ts's streamText:
 * UTF-8-safe text), then `event: done` {tokens, tokensPerSecond, checkpoint}; `event: error`
 * {error} if the model fails midway. Yields to the event loop after every token (other requests
 * are served between tokens) and stops as soon as the stream closes (client gone or server closing).
 */
export async function streamGeneration(loaded: LoadedModel, context: number[], request: GenerateRequest, stream: SseStream): Promise<void> {
  const { model, tokenizer } = loaded;
  const started = performance.now();
  let produced = 0;
  let chunks: Iterator<TextChunk> | null = null;
  try {
    chunks = streamText(model, tokenizer, context, {
      maxNewTokens: request.maxNewTokens,
      temperature: request.temperature,
      topK: request.topK,
      topP: request.topP,
      seed: request.seed ?? Math.floor(Math.random() * 2 ** 32),
    });
    while (!stream.closed) {
      const next = chunks.next();
      if (next.done) break;
      produced = next.value.index + 1;
      stream.send('token', { text: next.value.text, index: next.value.index });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (stream.closed) return;
    const seconds = (performance.now() - started) / 1000;
    stream.send('done', { tokens: produced, tokensPerSecond: seconds > 0 ? produced / seconds : 0, checkpoint: loaded.checkpoint });
  } catch (error) {
    stream.send('error', { error: `generation failed: ${(error as Error).message}` });
  } finally {
    // Ends the token stream, which restores the model's train/eval modes.
    chunks?.return?.(undefined);
    stream.end();
  }
}

export interface AttentionResponse {
  /** Each token's text. */
  tokens: string[];
  nLayers: number;
  nHeads: number;
  /** [layer][head][query][key]; zero above the diagonal, each row sums to 1. */
  weights: number[][][][];
  checkpoint: CheckpointChoice;
}

/** Rounded to 1e-6: JSON for 64 tokens stays small and rows still sum to 1 within 1e-4. */
function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export function attentionResponse(loaded: LoadedModel, prompt: string): AttentionResponse {
  const { model, tokenizer } = loaded;
  const ids = encodePrompt(tokenizer, prompt);
  const limit = Math.min(MAX_ATTENTION_TOKENS, model.config.maxSeqLen);
  if (ids.length < 1 || ids.length > limit) throw new HttpError(400, `prompt must encode to 1..${limit} tokens for the attention view, got ${ids.length}`);
  const maps = attentionMaps(model, ids);
  const t = maps.tokens;
  const weights = maps.layers.map((layer) =>
    Array.from({ length: maps.nHeads }, (_, h) => Array.from({ length: t }, (_, i) => Array.from(layer.subarray((h * t + i) * t, (h * t + i + 1) * t), round))),
  );
  return { tokens: ids.map((id) => tokenizer.decode([id])), nLayers: maps.nLayers, nHeads: maps.nHeads, weights, checkpoint: loaded.checkpoint };
}
