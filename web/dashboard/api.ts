/**
 * The dashboard server's JSON API (src/dashboard/server.ts), typed, and the helpers the page uses
 * to call it: plain fetches, an EventSource per run, and a POST whose body is a text/event-stream
 * (generation), read with fetch + ReadableStream and parsed by SseParser.
 */

// The records and run rows are the server's own types (type-only imports: nothing of Node is bundled).
import type { EvalRecord, MetricRecord, TrainRecord } from '../../src/train/metrics.js';
import type { RunStatus, RunSummary } from '../../src/dashboard/runs.js';
import type { ChatMessage, ChatRole } from '../../src/chat/template.js';
export type { ChatMessage, ChatRole, EvalRecord, MetricRecord, RunStatus, RunSummary, TrainRecord };

/** config.json of a run directory: the training config and the resolved model config. */
export interface RunConfig {
  train: Record<string, unknown>;
  model: Record<string, unknown>;
}

export interface RunDetail {
  name: string;
  config: RunConfig | null;
  metrics: MetricRecord[];
  hasBest: boolean;
  hasLatest: boolean;
  /** A chat model (its tokenizer has the chat template's tokens): POST /chat works. */
  chat: boolean;
}

export type Checkpoint = 'best' | 'latest';

export interface GenerateRequest {
  prompt: string;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  checkpoint?: Checkpoint;
  seed?: number;
  /** Continuations drawn at once (1..8, the rows of one batched run); default 1. */
  samples?: number;
}

export interface ChatRequest {
  /** The conversation so far, ending with the user's message. */
  messages: ChatMessage[];
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  checkpoint?: Checkpoint;
  seed?: number;
}

export interface AttentionResult {
  tokens: string[];
  nLayers: number;
  nHeads: number;
  /** [layer][head][query][key] */
  weights: number[][][][];
}

/** A run name is a POSIX relative path ('study/trial-3'): one URL segment, '/' encoded. */
export function runUrl(name: string, suffix = ''): string {
  return `/api/runs/${encodeURIComponent(name)}${suffix}`;
}

/** The server's `{error}` message when it sent one, else the status line. */
async function errorOf(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof body.error === 'string') return body.error;
    if (typeof body.message === 'string') return body.message;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`;
}

async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new Error(`cannot reach the dashboard server (${url}): ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(await errorOf(res));
  return (await res.json()) as T;
}

export async function listRuns(): Promise<RunSummary[]> {
  return (await getJson<{ runs: RunSummary[] }>('/api/runs')).runs;
}

export function getRun(name: string): Promise<RunDetail> {
  return getJson<RunDetail>(runUrl(name));
}

export function getAttention(name: string, prompt: string, checkpoint?: Checkpoint): Promise<AttentionResult> {
  return getJson<AttentionResult>(runUrl(name, '/attention'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, checkpoint }),
  });
}

export interface SseEvent {
  event: string;
  data: string;
}

/** An incremental parser of text/event-stream frames (the subset servers send: event, data, comments). */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  /** Feeds decoded text; returns the events completed by it. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone '\r' at the end may be the first half of '\r\n': wait for more.
      if (!match || (match[0] === '\r' && match.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      if (line === '') {
        if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
    }
    return out;
  }
}

export interface GenerateHandlers {
  /** `row`: which sample the text belongs to (0 unless several were asked for). */
  onToken(text: string, index: number, row: number): void;
  /** `checkpoint`: which file the server sampled from ('best' or 'latest'), when it says. */
  onDone(info: DoneInfo): void;
}

export interface DoneInfo {
  tokens: number;
  tokensPerSecond: number;
  checkpoint?: string;
  /** Chat only: 'stop' when the model ended its turn, 'length' when maxNewTokens ran out first. */
  stopReason?: string;
  /** Chat only: earlier messages the server left out because the conversation outgrew the context. */
  dropped?: number;
}

/**
 * Streams a generation: resolves when the stream ends (after `done`, or early on abort, which
 * rejects with an AbortError). A 4xx/5xx answer or an `error` event rejects with its message.
 */
export function streamGeneration(name: string, request: GenerateRequest, handlers: GenerateHandlers, signal: AbortSignal): Promise<void> {
  return streamEvents(runUrl(name, '/generate'), request, handlers, signal);
}

/** Streams a chat reply to `request.messages`: the same event stream as a generation (see streamGeneration). */
export function streamChat(name: string, request: ChatRequest, handlers: GenerateHandlers, signal: AbortSignal): Promise<void> {
  return streamEvents(runUrl(name, '/chat'), request, handlers, signal);
}

async function streamEvents(url: string, request: GenerateRequest | ChatRequest, handlers: GenerateHandlers, signal: AbortSignal): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(request),
    signal,
  });
  if (!res.ok) throw new Error(await errorOf(res));
  if (!res.body) throw new Error('the server sent no body');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  let done = false;
  let ended = false;
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) {
        ended = true;
        break;
      }
      const value = chunk.value;
      for (const ev of parser.push(value)) {
        const data = JSON.parse(ev.data) as Record<string, unknown>;
        if (ev.event === 'token') handlers.onToken(String(data.text ?? ''), Number(data.index), Number(data.row ?? 0));
        else if (ev.event === 'done') {
          done = true;
          handlers.onDone({
            tokens: Number(data.tokens),
            tokensPerSecond: Number(data.tokensPerSecond),
            checkpoint: typeof data.checkpoint === 'string' ? data.checkpoint : undefined,
            stopReason: typeof data.stopReason === 'string' ? data.stopReason : undefined,
            dropped: typeof data.dropped === 'number' ? data.dropped : undefined,
          });
        } else if (ev.event === 'error') throw new Error(String(data.error ?? data.message ?? 'generation failed'));
      }
    }
  } finally {
    // Stops the server's generation too when we leave early (an error event, a bad frame).
    if (!ended) reader.cancel().catch(() => undefined);
  }
  if (!done) throw new Error('the generation stream ended before its done event');
}
