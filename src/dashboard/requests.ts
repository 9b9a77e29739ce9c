import { conversationProblem, type ChatMessage } from '../chat/template.js';

/**
 * Validation of the dashboard's JSON request bodies. Every failure is an HttpError whose message
 * names the field and what was expected; the server answers it as { error } with its status.
 */

/** An error the client caused (or may retry), answered with `status` and `message` as JSON. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export type CheckpointChoice = 'best' | 'latest';

/** How to sample: what the generate and chat endpoints share. */
export interface SamplingRequest {
  maxNewTokens: number;
  temperature: number;
  topK: number | null;
  topP: number | null;
  /** The checkpoint asked for; the other one is used when it does not exist. */
  checkpoint: CheckpointChoice;
  /** Sampling seed; null draws one. */
  seed: number | null;
}

export interface GenerateRequest extends SamplingRequest {
  prompt: string;
  /** Continuations drawn at once (the rows of one batched run), 1..MAX_SAMPLES; absent: 1. */
  samples?: number;
}

export interface ChatRequest extends SamplingRequest {
  /** The conversation so far, ending with the user's message (a valid conversation: conversationProblem). */
  messages: ChatMessage[];
}

export interface AttentionRequest {
  prompt: string;
  checkpoint: CheckpointChoice;
}

const MAX_PROMPT_CHARS = 2000;
const MAX_NEW_TOKENS = 1000;
const DEFAULT_NEW_TOKENS = 200;
const DEFAULT_TEMPERATURE = 0.8;
/** Rows of one batched generation: each costs a row of KV cache and of compute per step. */
export const MAX_SAMPLES = 8;
/** A conversation is sent whole every turn; these bound what one request can make the server encode. */
export const MAX_CHAT_MESSAGES = 200;
export const MAX_MESSAGE_CHARS = 4000;
/** Attention maps grow as tokens²·layers·heads; 64 tokens keep the answer to a few hundred KiB. */
export const MAX_ATTENTION_TOKENS = 64;

type Body = Record<string, unknown>;

function objectBody(body: unknown, allowed: readonly string[]): Body {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, `request body must be a JSON object, got ${body === null ? 'null' : Array.isArray(body) ? 'an array' : typeof body}`);
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new HttpError(400, `unknown field '${key.slice(0, 64)}' (expected only ${allowed.join(', ')})`);
  }
  return body as Body;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function prompt(body: Body): string {
  const value = body.prompt;
  if (typeof value !== 'string') throw new HttpError(400, `prompt must be a string, got ${value === undefined ? 'nothing' : describe(value)}`);
  if (value.length > MAX_PROMPT_CHARS) throw new HttpError(400, `prompt must be at most ${MAX_PROMPT_CHARS} characters, got ${value.length}`);
  return value;
}

function optionalInt(body: Body, field: string, min: number, max: number): number | null {
  const value = body[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}..${max}`;
    throw new HttpError(400, `${field} must be an integer ${range}, got ${describe(value)}`);
  }
  return value;
}

function checkpoint(body: Body): CheckpointChoice {
  const value = body.checkpoint;
  if (value === undefined || value === null) return 'best';
  if (value !== 'best' && value !== 'latest') throw new HttpError(400, `checkpoint must be 'best' or 'latest', got ${describe(value)}`);
  return value;
}

const SAMPLING_FIELDS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'checkpoint', 'seed'] as const;

function sampling(b: Body): SamplingRequest {
  const maxNewTokens = optionalInt(b, 'maxNewTokens', 1, MAX_NEW_TOKENS) ?? DEFAULT_NEW_TOKENS;
  const temperature = b.temperature ?? DEFAULT_TEMPERATURE;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) throw new HttpError(400, `temperature must be a number ≥ 0, got ${describe(temperature)}`);
  let topP: number | null = null;
  if (b.topP !== undefined && b.topP !== null) {
    if (typeof b.topP !== 'number' || !(b.topP > 0 && b.topP <= 1)) throw new HttpError(400, `topP must be a number in (0, 1], got ${describe(b.topP)}`);
    topP = b.topP;
  }
  return {
    maxNewTokens,
    temperature,
    topK: optionalInt(b, 'topK', 1, Number.MAX_SAFE_INTEGER),
    topP,
    checkpoint: checkpoint(b),
    seed: optionalInt(b, 'seed', 0, Number.MAX_SAFE_INTEGER),
  };
}

export function parseGenerateRequest(body: unknown): GenerateRequest {
  const b = objectBody(body, ['prompt', 'samples', ...SAMPLING_FIELDS]);
  const text = prompt(b);
  return { prompt: text, samples: optionalInt(b, 'samples', 1, MAX_SAMPLES) ?? 1, ...sampling(b) };
}

/**
 * The chat body: `messages` checked by the chat template's own rule (conversationProblem, which
 * names the message at fault), ending with the user's message; only role and content per message.
 */
export function parseChatRequest(body: unknown): ChatRequest {
  const b = objectBody(body, ['messages', ...SAMPLING_FIELDS]);
  const value = b.messages;
  if (Array.isArray(value) && value.length > MAX_CHAT_MESSAGES) throw new HttpError(400, `messages must hold at most ${MAX_CHAT_MESSAGES} messages, got ${value.length}`);
  const problem = conversationProblem(value, 'user');
  if (problem !== null) throw new HttpError(400, `messages: ${problem}`);
  const messages = (value as Record<string, unknown>[]).map((m, i): ChatMessage => {
    for (const key of Object.keys(m)) {
      if (key !== 'role' && key !== 'content') throw new HttpError(400, `messages: message ${i + 1}: unknown field '${key.slice(0, 64)}' (expected only role, content)`);
    }
    const message = m as unknown as ChatMessage;
    if (message.content.length > MAX_MESSAGE_CHARS) throw new HttpError(400, `messages: message ${i + 1} (${message.role}): content must be at most ${MAX_MESSAGE_CHARS} characters, got ${message.content.length}`);
    return { role: message.role, content: message.content };
  });
  return { messages, ...sampling(b) };
}

export function parseAttentionRequest(body: unknown): AttentionRequest {
  const b = objectBody(body, ['prompt', 'checkpoint']);
  return { prompt: prompt(b), checkpoint: checkpoint(b) };
}
