/**
 * A multi-turn chat with a fine-tuned model (`tensorlm chat`; the dashboard's stateless chat
 * endpoint renders the whole conversation per request instead, with the same dropping rule): the
 * conversation in the chat template (chat/template.ts), replies streamed through the one
 * generation path (generate.ts) up to <|assistant_end|>, and the KV cache kept between turns, so
 * each turn costs only its own tokens — the cache holds exactly the ids the model has seen.
 *
 *   const chat = new ChatSession(model, tokenizer, { system: 'Answer briefly.' });
 *   for (const chunk of chat.send('reverse: cat', { maxNewTokens: 50, temperature: 0 })) process.stdout.write(chunk.text);
 *
 * When the next turn would not fit in the model's context, the cache is rebuilt from the
 * system message and the latest turns that fit (the oldest are dropped first).
 */
import { ChatTemplate, turnsToDrop, type ChatMessage } from '../chat/template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { generateTexts, streamText, type GeneratedText, type TextChunk, type TextGenerationOptions } from './generate.js';
import type { DecodeEngine } from './decode.js';
import type { KVCache } from '../nn/attention.js';
import type { TransformerLM } from './transformer.js';

export interface ChatSessionOptions {
  /** A system message that opens the conversation. */
  system?: string;
}

/** One turn's ids as the model saw them. */
interface ChatTurnIds {
  user: number[];
  reply: number[];
}

export type ChatReplyOptions = Omit<TextGenerationOptions, 'stop' | 'stopTokens' | 'cache' | 'keepOnOverflow'>;

export class ChatSession {
  readonly template: ChatTemplate;
  /** The conversation so far (the system message first, when there is one). */
  readonly messages: ChatMessage[] = [];
  /** The conversation's KV cache, on the decode engine. */
  #cache: DecodeEngine | KVCache;
  /** Ids the cache holds, in order. */
  #fed: number[] = [];
  /** Ids of the last reply that were generated but not yet fed (the cache lags by one token). */
  #pending: number[] = [];
  /** Each turn's ids as the model saw them: the user message (rendered) and the reply's tokens. */
  #turns: ChatTurnIds[] = [];
  /** The last sendCandidates' replies, while chooseCandidate may still pick one. */
  #candidates: { replies: GeneratedText[]; turn: number[]; record: ChatTurnIds } | null = null;

  constructor(
    readonly model: TransformerLM,
    tokenizer: Tokenizer,
    options: ChatSessionOptions = {},
  ) {
    this.template = new ChatTemplate(tokenizer);
    this.#cache = model.createDecoder(1);
    if (options.system !== undefined) this.messages.push({ role: 'system', content: options.system });
  }

  /** Forgets the conversation (the system message stays). */
  reset(): void {
    this.messages.splice(this.messages[0]?.role === 'system' ? 1 : 0);
    this.#turns = [];
    this.#candidates = null;
    this.#restart();
  }

  /** <|bos|> and the rendered system message, when there is one. */
  #prefix(): number[] {
    const system = this.messages[0]?.role === 'system' ? this.template.renderMessage(this.messages[0]) : [];
    return [this.template.specialIds.bos, ...system];
  }

  #restart(): void {
    this.#cache.reset();
    this.#fed = [];
    this.#pending = [];
  }

  /**
   * The ids to feed after the cache's for the reply to `user` (the pending ids, the rendered
   * message and <|assistant_start|>), and the tokens the reply may take. When that would not fit
   * the context, the cache is cleared and the ids are the conversation rebuilt from the latest
   * turns that leave room for a reply.
   */
  #prepareTurn(user: ChatMessage, options: ChatReplyOptions): { turn: number[]; userIds: number[]; maxNewTokens: number } {
    const context = this.model.config.maxSeqLen;
    if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 1) throw new RangeError(`chat: maxNewTokens must be a positive integer, got ${options.maxNewTokens}`);
    const userIds = this.template.renderMessage(user);
    const { assistantStart, assistantEnd } = this.template.specialIds;
    // Nothing fed and nothing pending: a fresh conversation (pending ids alone: after sendCandidates).
    let turn = this.#fed.length === 0 && this.#pending.length === 0 ? [...this.#prefix(), ...userIds, assistantStart] : [...this.#pending, ...userIds, assistantStart];
    let maxNewTokens = options.maxNewTokens;
    if (this.#fed.length + turn.length + maxNewTokens > context) {
      // Rebuild from the latest turns that leave room for a reply, from the ids the model saw (a
      // reply's text need not re-encode to its tokens).
      const fixed = this.#prefix().length + userIds.length + 1;
      const kept = this.#turns.slice(turnsToDrop(fixed, this.#turns.map((t) => t.user.length + t.reply.length + 2), maxNewTokens, context));
      turn = [...this.#prefix(), ...kept.flatMap((t) => [...t.user, assistantStart, ...t.reply, assistantEnd]), ...userIds, assistantStart];
      if (turn.length + 1 > context) throw new RangeError(`chat: the message is ${turn.length} tokens with the template; the model's context is ${context}`);
      this.#restart();
      maxNewTokens = Math.min(maxNewTokens, context - turn.length);
    }
    return { turn, userIds, maxNewTokens };
  }

  /**
   * Draws `n` candidate replies to a user message in one batched run (models/generate.ts's
   * generateTexts: n rows of the conversation) and continues the conversation with the first;
   * `chooseCandidate(i)` takes another one instead, until the next message. The batch runs on a
   * decoder of its own, so the conversation so far is fed once more (for n rows); the session's
   * cache takes the chosen turn with the next message. Sampled candidates are reproducible for a
   * seed; greedy ones are all the reply `send` gives.
   */
  sendCandidates(text: string, n: number, options: ChatReplyOptions): GeneratedText[] {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`chat: the number of candidates must be a positive integer, got ${n}`);
    const user: ChatMessage = { role: 'user', content: text };
    const { turn, userIds, maxNewTokens } = this.#prepareTurn(user, options);
    const replies = generateTexts(this.model, this.template.tokenizer, [...this.#fed, ...turn], { ...options, maxNewTokens, numSamples: n, stopTokens: [this.template.assistantEnd] });
    const record: ChatTurnIds = { user: userIds, reply: [] };
    this.#turns.push(record);
    this.messages.push(user, { role: 'assistant', content: '' });
    // Nothing of this turn is in the session's cache: all of it is pending (fed with the next message).
    this.#candidates = { replies, turn, record };
    this.chooseCandidate(0);
    return replies;
  }

  /** Continues the conversation with candidate `i` of the last sendCandidates instead. */
  chooseCandidate(i: number): void {
    const c = this.#candidates;
    if (c === null) throw new Error('chat: chooseCandidate needs the candidates of sendCandidates, and no message sent since');
    if (!Number.isInteger(i) || i < 0 || i >= c.replies.length) throw new RangeError(`chat: the candidate must be an integer in 0..${c.replies.length - 1}, got ${i}`);
    const { tokens, text } = c.replies[i];
    const { assistantEnd } = this.template.specialIds;
    const ended = tokens[tokens.length - 1] === assistantEnd;
    c.record.reply = ended ? tokens.slice(0, -1) : tokens.slice();
    this.#pending = [...c.turn, ...c.record.reply, assistantEnd];
    this.messages[this.messages.length - 1] = { role: 'assistant', content: text };
  }

  /**
   * Sends a user message and streams the reply; the generator's return value is the whole reply.
   * Stopping the iteration early keeps the partial reply in the conversation.
   */
  *send(text: string, options: ChatReplyOptions): Generator<TextChunk, GeneratedText, undefined> {
    const user: ChatMessage = { role: 'user', content: text };
    const { turn, userIds, maxNewTokens } = this.#prepareTurn(user, options);
    this.#candidates = null;
    const record: ChatTurnIds = { user: userIds, reply: [] };
    this.#turns.push(record);
    this.messages.push(user);
    const reply = { role: 'assistant' as const, content: '' };
    this.messages.push(reply);
    const stream = streamText(this.model, this.template.tokenizer, turn, { ...options, maxNewTokens, stopTokens: [this.template.assistantEnd], cache: this.#cache });
    const tokens: number[] = [];
    let result: GeneratedText | null = null;
    let errored = false;
    try {
      for (;;) {
        const next = stream.next();
        if (next.done) {
          result = next.value;
          break;
        }
        tokens.push(next.value.token);
        reply.content += next.value.text;
        yield next.value;
      }
    } catch (error) {
      // The cache may be part-way through a step: the next turn re-renders the conversation.
      errored = true;
      this.#restart();
      throw error;
    } finally {
      // Also when the caller stops early: the partial reply stays in the conversation.
      stream.return?.(undefined as never);
      if (!errored) {
        // The cache now holds the turn and every generated token but the last one.
        const generated = result?.tokens ?? tokens;
        this.#fed.push(...turn, ...generated.slice(0, -1));
        const last = generated[generated.length - 1];
        record.reply = last === this.template.assistantEnd ? generated.slice(0, -1) : generated.slice();
        this.#pending = last === undefined ? [this.template.assistantEnd] : last === this.template.assistantEnd ? [last] : [last, this.template.assistantEnd];
        if (result) reply.content = result.text;
      }
    }
    return result as GeneratedText;
  }
}
