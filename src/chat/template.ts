/**
 * The chat template: a conversation → token ids + a loss mask, nanochat-style. Every role
 * boundary is one special token, so the model never has to learn where a turn ends from
 * ordinary text, and user text can never forge a boundary (content is encoded with
 * `allowSpecial: false`).
 *
 *   <|bos|> <|system_start|> … <|system_end|> <|user_start|> … <|user_end|>
 *           <|assistant_start|> … <|assistant_end|> <|user_start|> … …
 *
 * The loss mask is 1 on each assistant message's content tokens and its <|assistant_end|>
 * (the model must learn to stop), 0 everywhere else (<|assistant_start|> included: it is
 * given, not predicted, when the model is asked for a reply).
 */
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** The template's special tokens, in the order `withSpecialTokens` should add them. */
export const CHAT_SPECIAL_TOKENS = [
  '<|bos|>',
  '<|system_start|>',
  '<|system_end|>',
  '<|user_start|>',
  '<|user_end|>',
  '<|assistant_start|>',
  '<|assistant_end|>',
] as const;

export type ChatSpecialToken = (typeof CHAT_SPECIAL_TOKENS)[number];

export type ChatRole = 'system' | 'user' | 'assistant';

export const CHAT_ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface Conversation {
  messages: ChatMessage[];
}

export interface RenderedChat {
  ids: number[];
  /** One entry per id: 1 = train on this token (assistant content and <|assistant_end|>), 0 = context only. */
  lossMask: Uint8Array;
}

/** Ids of the template's special tokens in one tokenizer. */
export interface ChatSpecialIds {
  bos: number;
  systemStart: number;
  systemEnd: number;
  userStart: number;
  userEnd: number;
  assistantStart: number;
  assistantEnd: number;
}

/**
 * Which message may come last: 'assistant' for a training conversation (it ends with the reply
 * to learn), 'user' for a prompt (the model replies next), 'any' for either.
 */
export type ConversationEnd = 'assistant' | 'user' | 'any';

/**
 * What is wrong with these messages, as one line (e.g. `message 3: expected role "assistant",
 * got "user"`), or null when they are a valid conversation: an optional leading system message,
 * then user and assistant messages alternating from a user message, each with non-blank content.
 * It takes `unknown` so that JSONL readers can check parsed lines with the same rule; `field`
 * names the array in the description.
 */
export function conversationProblem(messages: unknown, end: ConversationEnd = 'any', field = 'messages'): string | null {
  if (!Array.isArray(messages)) return `expected "${field}" to be an array of messages, got ${describeValue(messages)}`;
  if (messages.length === 0) return `expected at least one message, got an empty "${field}" array`;
  let expected: ChatRole = 'user';
  for (let i = 0; i < messages.length; i++) {
    const where = field === 'messages' ? `message ${i + 1}` : `"${field}" message ${i + 1}`;
    const m: unknown = messages[i];
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return `${where}: expected an object with "role" and "content", got ${describeValue(m)}`;
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      return `${where}: expected "role" to be "system", "user" or "assistant", got ${describeValue(role)}`;
    }
    const isLeadingSystem = i === 0 && role === 'system';
    if (!isLeadingSystem && role !== expected) {
      const rule = role === 'system' ? 'a system message may only come first' : 'user and assistant messages alternate, starting with user';
      return `${where}: expected role "${expected}", got "${role}" (${rule})`;
    }
    if (typeof content !== 'string') return `${where} (${role}): expected "content" to be a string, got ${describeValue(content)}`;
    if (content.trim().length === 0) return `${where} (${role}): expected non-empty "content"`;
    if (!isLeadingSystem) expected = role === 'user' ? 'assistant' : 'user';
  }
  const last = (messages[messages.length - 1] as ChatMessage).role;
  if (end === 'assistant' && last !== 'assistant') return `expected the last message to be the assistant's reply, got "${last}"`;
  if (end === 'user' && last !== 'user') return `expected the last message to be from the user (the prompt to reply to), got "${last}"`;
  return null;
}

/** Throws `conversationProblem`'s description, prefixed with `where`, when the messages are invalid. */
export function validateMessages(messages: readonly ChatMessage[], end: ConversationEnd = 'any', where = 'conversation'): void {
  const problem = conversationProblem(messages, end);
  if (problem !== null) throw new Error(`${where}: ${problem}`);
}

/** A short description of a JSON value for error messages: `"bot"`, `42`, `an array`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** When earlier turns must be left out, a reply keeps at least this share of the context (1/4). */
export const MIN_REPLY_SHARE = 4;

/**
 * How many of the oldest turns a chat leaves out so that it fits a model's context with room for
 * the reply (at least 1/MIN_REPLY_SHARE of the context, or maxNewTokens if less): `fixed` tokens
 * are always kept (<|bos|>, the system message, the new message, <|assistant_start|>), `turns`
 * are the lengths of the earlier turns, oldest first (a user message and its reply each). All of
 * them when even the newest does not fit; the caller then checks `fixed` against the context.
 */
export function turnsToDrop(fixed: number, turns: readonly number[], maxNewTokens: number, context: number): number {
  const room = Math.min(maxNewTokens, Math.floor(context / MIN_REPLY_SHARE));
  let length = fixed + turns.reduce((n, t) => n + t, 0);
  let dropped = 0;
  while (length + room > context && dropped < turns.length) length -= turns[dropped++];
  return dropped;
}

export class ChatTemplate {
  readonly tokenizer: Tokenizer;
  readonly specialIds: Readonly<ChatSpecialIds>;
  /** The id that ends a reply: generation stops there. */
  readonly assistantEnd: number;

  /** Needs a tokenizer with every token of `CHAT_SPECIAL_TOKENS` (add them with `withSpecialTokens`). */
  constructor(tokenizer: Tokenizer) {
    const specials = tokenizer.specialTokens;
    const missing = CHAT_SPECIAL_TOKENS.filter((t) => !Object.hasOwn(specials, t));
    if (missing.length > 0) {
      throw new Error(
        `ChatTemplate: the tokenizer lacks the special tokens ${missing.map((t) => JSON.stringify(t)).join(', ')}; ` +
          'add them with tokenizer.withSpecialTokens(CHAT_SPECIAL_TOKENS) (existing ids stay as they are)',
      );
    }
    this.tokenizer = tokenizer;
    this.specialIds = Object.freeze({
      bos: specials['<|bos|>'],
      systemStart: specials['<|system_start|>'],
      systemEnd: specials['<|system_end|>'],
      userStart: specials['<|user_start|>'],
      userEnd: specials['<|user_end|>'],
      assistantStart: specials['<|assistant_start|>'],
      assistantEnd: specials['<|assistant_end|>'],
    });
    this.assistantEnd = this.specialIds.assistantEnd;
  }

  /**
   * A training conversation → ids and loss mask. The messages must end with the assistant's
   * reply; the mask is 1 on every assistant message's content and its <|assistant_end|>.
   */
  render(conv: Conversation): RenderedChat {
    validateMessages(conv.messages, 'assistant', 'ChatTemplate.render');
    const ids: number[] = [this.specialIds.bos];
    const trained: boolean[] = [false];
    for (const message of conv.messages) {
      const [start, end] = this.boundaries(message.role);
      const train = message.role === 'assistant';
      ids.push(start);
      trained.push(false);
      // Plain loops, not push(...content): spreading a long message would overflow the call stack.
      for (const id of this.encodeContent(message.content)) {
        ids.push(id);
        trained.push(train);
      }
      ids.push(end);
      trained.push(train);
    }
    return { ids, lossMask: Uint8Array.from(trained, (t) => (t ? 1 : 0)) };
  }

  /**
   * The conversation so far (ending with a user message) + <|assistant_start|>: the prompt from
   * which the model generates a reply, up to `assistantEnd`.
   */
  renderForGeneration(messages: ChatMessage[]): number[] {
    validateMessages(messages, 'user', 'ChatTemplate.renderForGeneration');
    const ids: number[] = [this.specialIds.bos];
    for (const message of messages) for (const id of this.renderMessage(message)) ids.push(id);
    ids.push(this.specialIds.assistantStart);
    return ids;
  }

  /**
   * One message as it stands inside a conversation: <|ROLE_start|> + content + <|ROLE_end|>. A
   * chat that keeps its KV cache between turns feeds only the new turn: renderMessage(user) +
   * <|assistant_start|> (renderForGeneration is <|bos|> + every message's renderMessage + that).
   */
  renderMessage(message: ChatMessage): number[] {
    const [start, end] = this.boundaries(message.role);
    const ids = [start];
    for (const id of this.encodeContent(message.content)) ids.push(id);
    ids.push(end);
    return ids;
  }

  /**
   * The ids of an assistant reply as they follow <|assistant_start|>: content + <|assistant_end|>.
   * `renderForGeneration(prompt)` followed by this is the whole conversation, which is how
   * preference pairs (the same prompt, two replies) are scored.
   */
  renderReply(content: string): number[] {
    if (typeof content !== 'string' || content.trim().length === 0) {
      throw new Error(`ChatTemplate.renderReply: expected non-empty reply text, got ${describeValue(content)}`);
    }
    const ids = this.encodeContent(content);
    ids.push(this.specialIds.assistantEnd);
    return ids;
  }

  /** Message text as ordinary tokens: special-token text typed by a user stays text. */
  private encodeContent(content: string): number[] {
    return this.tokenizer.encode(content, { allowSpecial: false });
  }

  private boundaries(role: ChatRole): [number, number] {
    const s = this.specialIds;
    if (role === 'system') return [s.systemStart, s.systemEnd];
    if (role === 'user') return [s.userStart, s.userEnd];
    return [s.assistantStart, s.assistantEnd];
  }
}
