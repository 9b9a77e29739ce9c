/**
 * What the dashboard computes with a run's model: streamed generation and attention maps. Models
 * are loaded with the library's loadRun, after a cheap check of the size the checkpoint declares,
 * and cached per (run, checkpoint file, its mtime), so a checkpoint rewritten by a training run in
 * progress is picked up on the next request.
 */
import { statSync } from 'node:fs';
import { ChatTemplate, turnsToDrop, type ChatMessage } from '../chat/template.js';
import { attentionMaps } from '../models/inspect.js';
import type { LanguageModel } from '../models/language-model.js';
import { TransformerLM } from '../models/transformer.js';
import { promptIds, streamTexts, type BatchTextChunk, type GeneratedText } from '../models/generate.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { ModelConfigInput } from '../models/config.js';
import { countParameters } from '../models/params.js';
import { loadRun } from '../train/trainer.js';
import { clipMessage } from './json.js';
import { parseJsonText } from '../io/json.js';
import { HttpError, MAX_ATTENTION_TOKENS, type CheckpointChoice, type SamplingRequest } from './requests.js';
import { readCheckpointHeader, runFile, type RunEntry } from './runs.js';
import type { SseStream } from './sse.js';

export interface LoadedModel {
  model: LanguageModel;
  tokenizer: Tokenizer;
  /** The checkpoint actually loaded (the other one when the requested one does not exist). */
  checkpoint: CheckpointChoice;
}

/** The largest model the dashboard loads, in parameters (1.2 GB of float32 weights). */
export const DEFAULT_MAX_MODEL_PARAMETERS = 300_000_000;

/**
 * Checks, from the checkpoint's header alone (nothing allocated, milliseconds), that the model it
 * declares is one the dashboard may load: a valid config, at most `maxParameters` parameters, and
 * no more parameters than the weights the file holds — a checkpoint asking for 3000 layers while
 * holding two would otherwise build the whole model before loadRun finds the weights missing.
 * Throws an Error saying what is wrong.
 */
export function checkCheckpointModel(path: string, maxParameters = DEFAULT_MAX_MODEL_PARAMETERS): void {
  const header = readCheckpointHeader(path);
  const metaText = header.metadata.meta;
  if (typeof metaText !== 'string') throw new Error('it has no TensorLM metadata (not written by tensorlm train)');
  let meta: { config?: { model?: unknown } } | null;
  try {
    meta = parseJsonText(metaText, 'metadata') as { config?: { model?: unknown } } | null;
  } catch (error) {
    throw new Error(`its metadata is not readable JSON (${(error as Error).message.replace(/^metadata: invalid JSON:? ?/, '')})`);
  }
  const model = meta?.config?.model;
  if (model === null || typeof model !== 'object' || Array.isArray(model)) throw new Error('its metadata has no model config');
  const declared = countParameters(model as ModelConfigInput).total;
  const layers = (model as { nLayers?: unknown }).nLayers;
  if (!(declared <= maxParameters)) throw new Error(`it declares a model of ${declared} parameters (nLayers ${String(layers)}), more than the ${maxParameters} the dashboard loads`);
  let stored = 0;
  for (const [name, entry] of Object.entries(header.tensors)) {
    if (!name.startsWith('optimizer.')) stored += entry.shape.reduce((n, d) => n * d, 1);
  }
  if (declared > stored) throw new Error(`it declares a model of ${declared} parameters (nLayers ${String(layers)}) but holds only ${stored} weights`);
}

/**
 * A few loaded models, least recently used dropped first (a tiny preset is ~10 MB of weights),
 * keyed by (run, checkpoint, the file's inode, size and mtime). A checkpoint that failed to load is
 * remembered the same way, so asking again answers the same short error at once instead of reading
 * the file again; a rewritten file is tried afresh.
 */
export class ModelCache {
  readonly #entries = new Map<string, LoadedModel | HttpError>();

  constructor(
    readonly capacity = 4,
    readonly maxParameters = DEFAULT_MAX_MODEL_PARAMETERS,
  ) {}

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
      if (hit instanceof HttpError) throw hit;
      return hit;
    }
    let loaded: LoadedModel | HttpError;
    try {
      checkCheckpointModel(path, this.maxParameters);
      const { model, tokenizer } = loadRun(run.dir, which);
      loaded = { model, tokenizer, checkpoint: which };
    } catch (error) {
      loaded = new HttpError(500, clipMessage(`could not load the ${which} checkpoint of run '${run.name}': ${(error as Error).message}`));
    }
    // Older versions of the same checkpoint are stale now.
    for (const k of this.#entries.keys()) if (k.startsWith(`${run.dir}\0${which}\0`)) this.#entries.delete(k);
    this.#entries.set(key, loaded);
    while (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value as string);
    if (loaded instanceof HttpError) throw loaded;
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


export interface ChatContext {
  /** <|bos|>, the kept messages and <|assistant_start|> (ChatTemplate.renderForGeneration). */
  ids: number[];
  /** Tokens the reply may take: the request's maxNewTokens, cut so the sequence fits the context. */
  maxNewTokens: number;
  /** Earlier messages left out because the conversation did not fit the model's context. */
  dropped: number;
  /** The id that ends the reply. */
  assistantEnd: number;
}

/**
 * The prompt for the reply to `messages` (valid, ending with a user message). The server keeps no
 * state between turns, so the whole conversation is rendered each time; when it does not fit the
 * model's context with room for a reply, the oldest user/assistant pairs are left out (a leading
 * system message stays), the rule ChatSession applies to its cache. 409 for a run whose tokenizer
 * lacks the chat tokens; 400 for text the tokenizer cannot encode or a last message that alone is
 * too long.
 */
export function chatContext(loaded: LoadedModel, runName: string, messages: ChatMessage[], maxNewTokens: number): ChatContext {
  let template: ChatTemplate;
  try {
    template = new ChatTemplate(loaded.tokenizer);
  } catch {
    throw new HttpError(409, `run '${runName}' is not a chat model: its tokenizer lacks the chat special tokens (<|user_start|>, <|assistant_end|>, …); fine-tune it in the chat format first (tensorlm sft --base <run>)`);
  }
  const model = loaded.model;
  if (!(model instanceof TransformerLM)) throw new HttpError(409, `run '${runName}' is not a chat model: it is a recurrent '${model.config.arch}' model, and chat fine-tuning needs a transformer`);
  const context = model.config.maxSeqLen;
  // Each message is rendered once; an unencodable one is named (a char tokenizer knows only its alphabet).
  const rendered = messages.map((m, i) => {
    try {
      return template.renderMessage(m);
    } catch (error) {
      throw new HttpError(400, `messages: message ${i + 1} (${m.role}) cannot be encoded by this run's tokenizer: ${(error as Error).message}`);
    }
  });
  const system = messages[0].role === 'system' ? 1 : 0;
  // Drop whole user/assistant pairs: the kept messages still alternate from a user message.
  const pairs: number[] = [];
  for (let i = system; i + 1 < messages.length; i += 2) pairs.push(rendered[i].length + rendered[i + 1].length);
  const fixed = 2 + (system ? rendered[0].length : 0) + rendered[messages.length - 1].length;
  const dropped = turnsToDrop(fixed, pairs, maxNewTokens, context);
  const from = system + 2 * dropped;
  const total = fixed + pairs.slice(dropped).reduce((n, p) => n + p, 0);
  if (total + 1 > context) {
    throw new HttpError(400, `messages: the last message is ${total} tokens with the chat template; the model's context is ${context} tokens`);
  }
  const kept = [...(system ? [messages[0]] : []), ...messages.slice(from)];
  const ids = template.renderForGeneration(kept);
  return { ids, maxNewTokens: Math.min(maxNewTokens, context - ids.length), dropped: from - system, assistantEnd: template.assistantEnd };
}

export interface StreamOptions {
  /** Ids that end the generation (not streamed): a chat reply's <|assistant_end|>. */
  stopTokens?: readonly number[];
  /** More fields for the `done` event. */
  done?: (result: GeneratedText | null) => Record<string, unknown>;
}

/**
 * Streams `event: token` {text, index} per generated token (models/generate.ts's streamTexts:
 * UTF-8-safe text), then `event: done` {tokens, tokensPerSecond, checkpoint}; `event: error`
 * {error} if the model fails midway. With `samples` > 1 the continuations are the rows of one
 * batched run: each token event also names its `row`, `tokens` counts those of every row and
 * `done` adds `samples`. Yields to the event loop after every step's chunks (other requests are
 * served between tokens) and stops as soon as the stream closes (client gone or server closing).
 */
export async function streamGeneration(loaded: LoadedModel, context: number[], request: SamplingRequest & { samples?: number }, stream: SseStream, options: StreamOptions = {}): Promise<void> {
  const { model, tokenizer } = loaded;
  const started = performance.now();
  const samples = request.samples ?? 1;
  // Tokens streamed per row (a stop token is generated but not streamed).
  const produced = new Array<number>(samples).fill(0);
  let chunks: Iterator<BatchTextChunk, GeneratedText[]> | null = null;
  let results: GeneratedText[] | null = null;
  try {
    chunks = streamTexts(model, tokenizer, context, {
      maxNewTokens: request.maxNewTokens,
      temperature: request.temperature,
      topK: request.topK,
      topP: request.topP,
      seed: request.seed ?? Math.floor(Math.random() * 2 ** 32),
      stopTokens: options.stopTokens,
      numSamples: samples,
    });
    while (!stream.closed) {
      const next = chunks.next();
      if (next.done) {
        results = next.value;
        break;
      }
      const { text, index, row } = next.value;
      produced[row] = index + 1;
      // One sample keeps the event it always had; several name the row the text belongs to.
      stream.send('token', samples === 1 ? { text, index } : { text, index, row });
      // A step's chunks come in row order: the event loop gets its turn after each step's last row.
      if (row === samples - 1 || samples === 1) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (stream.closed) return;
    const seconds = (performance.now() - started) / 1000;
    const tokens = produced.reduce((n, p) => n + p, 0);
    stream.send('done', { tokens, tokensPerSecond: seconds > 0 ? tokens / seconds : 0, checkpoint: loaded.checkpoint, ...(samples === 1 ? {} : { samples }), ...options.done?.(results?.[0] ?? null) });
  } catch (error) {
    stream.send('error', { error: clipMessage(`generation failed: ${(error as Error).message}`) });
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
  if (!(model instanceof TransformerLM)) throw new HttpError(409, `the attention view needs a transformer; this run is a recurrent '${model.config.arch}' model, which has no attention`);
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
