/**
 * POST /api/runs/:name/chat on a real chat run made here (a tiny base trained for a few steps,
 * then fine-tuned on conversations reversing a dozen words): the reply streams like a generation
 * and equals the library's generateText on the rendered conversation; the request is validated field by field,
 * and a run that is not a chat model is a 409.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplate, type ChatMessage } from '../../src/chat/template.js';
import { startDashboard, type Dashboard } from '../../src/dashboard/server.js';
import { generateText } from '../../src/models/generate.js';
import { loadRun } from '../../src/train/trainer.js';
import { baseRun, wordChatRun } from '../posttrain/helpers.js';
import { httpSend, openEvents, postJson, type RawResponse } from './helpers.js';

const json = (r: RawResponse): Record<string, unknown> => JSON.parse(r.body) as Record<string, unknown>;

describe('dashboard chat API', () => {
  let dir: string;
  let server: Dashboard;

  beforeAll(async () => {
    // Both runs sit in one root: 'base' (a plain language model) and 'chat' (fine-tuned from it).
    dir = mkdtempSync(join(tmpdir(), 'tensorlm-dashboard-chat-'));
    const base = await baseRun(dir);
    await wordChatRun(base, dir, (w) => [`reverse: ${w}`, [...w].reverse().join('')]);
    server = await startDashboard({ runs: dir, port: 0 });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The reply the server streams for `messages` (greedy): token texts, and the done event. */
  async function chat(messages: ChatMessage[], extra: Record<string, unknown> = {}) {
    const client = openEvents(server.url, '/api/runs/chat/chat', { messages, temperature: 0, maxNewTokens: 12, ...extra });
    expect(await client.status).toBe(200);
    expect((await client.headers)['content-type']).toMatch(/^text\/event-stream/);
    const done = await client.next((e) => e.event === 'done' || e.event === 'error', 15_000);
    await client.ended;
    expect(done.event).toBe('done');
    const tokens = client.events.filter((e) => e.event === 'token').map((e) => e.data as { text: string; index: number });
    return { tokens, done: done.data as Record<string, unknown> };
  }

  /** What the library says the greedy reply is. */
  function expected(messages: ChatMessage[], maxNewTokens = 12) {
    const { model, tokenizer } = loadRun(join(dir, 'chat'), 'best');
    const template = new ChatTemplate(tokenizer);
    return generateText(model, tokenizer, template.renderForGeneration(messages), { maxNewTokens, temperature: 0, stopTokens: [template.assistantEnd] });
  }

  it('marks chat runs in the run list and the run detail', async () => {
    const list = json(await httpSend(server.url, 'GET', '/api/runs')).runs as { name: string; chat: boolean }[];
    expect(list.map((r) => [r.name, r.chat])).toEqual([
      ['base', false],
      ['chat', true],
    ]);
    expect(json(await httpSend(server.url, 'GET', '/api/runs/chat')).chat).toBe(true);
    expect(json(await httpSend(server.url, 'GET', '/api/runs/base')).chat).toBe(false);
  });

  it('streams the greedy reply token by token, equal to generateText on the rendered conversation', async () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'reverse: cat' }];
    const { tokens, done } = await chat(messages);
    const want = expected(messages);
    expect(want.text.trim()).not.toBe('');
    expect(tokens.map((t) => t.index)).toEqual(tokens.map((_, i) => i));
    expect(tokens.map((t) => t.text).join('')).toBe(want.text);
    // The closing <|assistant_end|> is generated but not streamed.
    const replyTokens = want.stopReason === 'stop' ? want.tokens.length - 1 : want.tokens.length;
    expect(done).toMatchObject({ tokens: replyTokens, checkpoint: 'best', stopReason: want.stopReason, dropped: 0 });
    expect(done.tokensPerSecond).toBeGreaterThan(0);
  });

  it('renders the whole conversation each turn: a system message and earlier turns', async () => {
    // 27 tokens with the template, so that all of it fits the model's 32 with the 5 of the reply.
    const messages: ChatMessage[] = [
      { role: 'system', content: 'x' },
      { role: 'user', content: 'ab' },
      { role: 'assistant', content: 'ba' },
      { role: 'user', content: 'reverse: dog' },
    ];
    const { tokens, done } = await chat(messages, { maxNewTokens: 5 });
    expect(done.dropped).toBe(0);
    expect(tokens.map((t) => t.text).join('')).toBe(expected(messages, 5).text);
  });

  it('leaves out the oldest turns when the conversation does not fit the context', async () => {
    // maxSeqLen is 32: four turns of ~10 tokens each cannot all be shown.
    const messages: ChatMessage[] = [];
    for (const w of ['abc', 'def', 'ghi']) messages.push({ role: 'user', content: `reverse: ${w}` }, { role: 'assistant', content: [...w].reverse().join('') });
    messages.push({ role: 'user', content: 'reverse: cat' });
    const { tokens, done } = await chat(messages, { maxNewTokens: 8 });
    expect(done.dropped).toBeGreaterThan(0);
    expect((done.dropped as number) % 2).toBe(0);
    const kept = messages.slice(done.dropped as number);
    const want = expected(kept, 8);
    expect(tokens.map((t) => t.text).join('')).toBe(want.text);
  });

  it('refuses invalid conversations with a 400 naming the message at fault', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /^messages: expected "messages" to be an array of messages, got nothing$/],
      [{ messages: [] }, /^messages: expected at least one message, got an empty "messages" array$/],
      [{ messages: [{ role: 'bot', content: 'hi' }] }, /^messages: message 1: expected "role" to be "system", "user" or "assistant", got "bot"$/],
      [{ messages: [{ role: 'user', content: '  ' }] }, /^messages: message 1 \(user\): expected non-empty "content"$/],
      [{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }, /^messages: expected the last message to be from the user/],
      [{ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] }, /^messages: message 2: expected role "assistant", got "user"/],
      [{ messages: [{ role: 'user', content: 'hi', name: 'x' }] }, /^messages: message 1: unknown field 'name'/],
      [{ messages: [{ role: 'user', content: 'x'.repeat(4001) }] }, /^messages: message 1 \(user\): content must be at most 4000 characters, got 4001$/],
      [{ messages: Array.from({ length: 201 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'a' })) }, /^messages must hold at most 200 messages, got 201$/],
      [{ messages: [{ role: 'user', content: 'hi' }], temperature: -1 }, /^temperature must be a number ≥ 0/],
      [{ messages: [{ role: 'user', content: 'hi' }], prompt: 'hi' }, /^unknown field 'prompt'/],
      [{ messages: [{ role: 'user', content: 'x'.repeat(200) }] }, /^messages: the last message is \d+ tokens with the chat template; the model's context is 32 tokens$/],
      [{ messages: [{ role: 'user', content: 'reverse: ☃' }] }, /^messages: message 1 \(user\) cannot be encoded by this run's tokenizer/],
    ];
    for (const [body, message] of cases) {
      const r = await postJson(server.url, '/api/runs/chat/chat', body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(json(r).error).toMatch(message);
      expect(r.body).not.toMatch(/\bat .*\.ts:\d+/);
    }
    const text = await httpSend(server.url, 'POST', '/api/runs/chat/chat', { headers: { 'Content-Type': 'text/plain' }, body: '{}' });
    expect(text.status).toBe(415);
    expect((await postJson(server.url, '/api/runs/nope/chat', { messages: [{ role: 'user', content: 'hi' }] })).status).toBe(404);
  });

  it('answers 409 for a run that is not a chat model', async () => {
    const r = await postJson(server.url, '/api/runs/base/chat', { messages: [{ role: 'user', content: 'reverse: cat' }] });
    expect(r.status).toBe(409);
    expect(json(r).error).toMatch(/^run 'base' is not a chat model: its tokenizer lacks the chat special tokens/);
  });
});
