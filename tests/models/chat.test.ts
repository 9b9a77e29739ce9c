/** ChatSession (models/chat.ts): multi-turn replies with the KV cache kept between turns. */
import { describe, expect, it } from 'vitest';
import { CHAT_SPECIAL_TOKENS, ChatTemplate } from '../../src/chat/template.js';
import { ChatSession } from '../../src/models/chat.js';
import { generateText } from '../../src/models/generate.js';
import { presetConfig } from '../../src/models/presets.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { Generator } from '../../src/tensor/random.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';

const tokenizer = CharTokenizer.fromText('abcdefghijklmnopqrstuvwxyz :?!\n').withSpecialTokens(CHAT_SPECIAL_TOKENS);
const template = new ChatTemplate(tokenizer);

function model(maxSeqLen = 256): TransformerLM {
  return new TransformerLM(presetConfig('tiny', { vocabSize: tokenizer.vocabSize, dModel: 32, nLayers: 2, nHeads: 2, nKvHeads: 2, dFF: 64, maxSeqLen }), { generator: new Generator(3) });
}

function reply(chat: ChatSession, text: string, maxNewTokens: number) {
  const it = chat.send(text, { maxNewTokens, temperature: 0 });
  let streamed = '';
  for (;;) {
    const r = it.next();
    if (r.done) return { result: r.value, streamed };
    streamed += r.value.text;
  }
}

describe('ChatSession', () => {
  it('continues from the cache: each reply equals a fresh generation from every id the model has seen', () => {
    const m = model();
    const chat = new ChatSession(m, tokenizer, { system: 'be brief' });
    const first = reply(chat, 'abc?', 12);
    expect(first.streamed).toBe(first.result.text);
    const seen = [...template.renderForGeneration([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'abc?' }])];
    const fresh1 = generateText(m, tokenizer, seen, { maxNewTokens: 12, temperature: 0, stopTokens: [template.assistantEnd] });
    expect(first.result.tokens).toEqual(fresh1.tokens);
    // What the model saw of the first reply: its tokens, closed by <|assistant_end|> if it was cut.
    seen.push(...first.result.tokens);
    if (first.result.stopReason !== 'stop') seen.push(template.assistantEnd);
    seen.push(...template.renderMessage({ role: 'user', content: 'hi!' }), template.specialIds.assistantStart);
    const second = reply(chat, 'hi!', 12);
    const fresh2 = generateText(m, tokenizer, seen, { maxNewTokens: 12, temperature: 0, stopTokens: [template.assistantEnd] });
    expect(second.result.tokens).toEqual(fresh2.tokens);
    expect(chat.messages.map((msg) => msg.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
    expect(chat.messages[4].content).toBe(second.result.text);
  });

  it('reset forgets the turns but keeps the system message; a full context drops the oldest turns', () => {
    const m = model(48);
    const chat = new ChatSession(m, tokenizer, { system: 'sys' });
    for (let i = 0; i < 6; i++) reply(chat, `q${'abc'[i % 3]}?`, 10);
    expect(chat.messages.length).toBe(13);
    chat.reset();
    expect(chat.messages).toEqual([{ role: 'system', content: 'sys' }]);
    const again = reply(chat, 'abc?', 12);
    const fresh = generateText(m, tokenizer, template.renderForGeneration([{ role: 'system', content: 'sys' }, { role: 'user', content: 'abc?' }]), { maxNewTokens: 12, temperature: 0, stopTokens: [template.assistantEnd] });
    expect(again.result.tokens).toEqual(fresh.tokens);
    expect(() => reply(chat, 'a'.repeat(60), 4)).toThrow(/the model's context is 48/);
  });

  it('sendCandidates draws several replies in one batched run; the conversation continues with the chosen one', () => {
    const m = model();
    const greedy = new ChatSession(m, tokenizer, { system: 'be brief' });
    const candidates = greedy.sendCandidates('abc?', 3, { maxNewTokens: 12, temperature: 0 });
    const single = reply(new ChatSession(m, tokenizer, { system: 'be brief' }), 'abc?', 12).result;
    expect(candidates).toEqual([single, single, single]);
    expect(greedy.messages[2]).toEqual({ role: 'assistant', content: single.text });

    const chat = new ChatSession(m, tokenizer);
    const sampled = chat.sendCandidates('hi!', 4, { maxNewTokens: 10, temperature: 1, seed: 2 });
    expect(new ChatSession(m, tokenizer).sendCandidates('hi!', 4, { maxNewTokens: 10, temperature: 1, seed: 2 })).toEqual(sampled);
    expect(new Set(sampled.map((r) => r.text)).size).toBeGreaterThan(1);
    chat.chooseCandidate(2);
    expect(chat.messages.map((msg) => msg.content)).toEqual(['hi!', sampled[2].text]);
    // The next turn (on the session's cache) sees the chosen reply, closed by <|assistant_end|>.
    const chosen = sampled[2].tokens[sampled[2].tokens.length - 1] === template.assistantEnd ? sampled[2].tokens : [...sampled[2].tokens, template.assistantEnd];
    const seen = [...template.renderForGeneration([{ role: 'user', content: 'hi!' }]), ...chosen, ...template.renderMessage({ role: 'user', content: 'abc?' }), template.specialIds.assistantStart];
    const next = reply(chat, 'abc?', 12);
    expect(next.result.tokens).toEqual(generateText(m, tokenizer, seen, { maxNewTokens: 12, temperature: 0, stopTokens: [template.assistantEnd] }).tokens);
    expect(() => chat.chooseCandidate(0)).toThrow(/^chat: chooseCandidate needs the candidates of sendCandidates/);
    const again = new ChatSession(m, tokenizer);
    expect(() => again.sendCandidates('hi!', 0, { maxNewTokens: 4 })).toThrow(/^chat: the number of candidates must be a positive integer, got 0$/);
    again.sendCandidates('hi!', 2, { maxNewTokens: 4, temperature: 0 });
    expect(() => again.chooseCandidate(2)).toThrow(/^chat: the candidate must be an integer in 0\.\.1, got 2$/);
  });

  it('needs a tokenizer with the chat tokens', () => {
    expect(() => new ChatSession(model(), CharTokenizer.fromText('abc'))).toThrow(/lacks the special tokens/);
  });
});
