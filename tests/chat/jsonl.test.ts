import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConversationsJsonl, parsePreferencesJsonl, readConversations, readPreferences } from '../../src/chat/index.js';
import { makeTempDir } from '../tokenizers/helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);

const line = (value: unknown): string => JSON.stringify(value);
const user = (content: string) => ({ role: 'user', content });
const assistant = (content: string) => ({ role: 'assistant', content });

describe('readConversations', () => {
  it('reads one conversation per line, skipping blank lines and dropping extra fields', () => {
    const path = join(tmp.fresh(), 'sft.jsonl');
    const text = [
      line({ id: 7, messages: [{ role: 'system', content: 'Be brief.' }, user('2+2='), { ...assistant('4'), weight: 1 }] }),
      '',
      '   ',
      line({ messages: [user('hi'), assistant('hello'), user('bye'), assistant('bye!')] }),
      '',
    ].join('\r\n');
    writeFileSync(path, `\uFEFF${text}`);
    expect(readConversations(path)).toEqual([
      { messages: [{ role: 'system', content: 'Be brief.' }, user('2+2='), assistant('4')] },
      { messages: [user('hi'), assistant('hello'), user('bye'), assistant('bye!')] },
    ]);
  });

  it('names the file and line of every kind of bad line', () => {
    const good = line({ messages: [user('a'), assistant('b')] });
    const cases: Array<[string, RegExp]> = [
      ['{"messages": [', /^data\.jsonl:3: expected one JSON object per line, got invalid JSON \(.+\)$/],
      ['[1, 2]', /^data\.jsonl:3: expected a JSON object, got an array$/],
      ['"text"', /^data\.jsonl:3: expected a JSON object, got "text"$/],
      [line({ conversation: [] }), /^data\.jsonl:3: expected "messages" to be an array of messages, got nothing$/],
      [line({ messages: [] }), /^data\.jsonl:3: expected at least one message, got an empty "messages" array$/],
      [line({ messages: [user('a'), { role: 'bot', content: 'b' }] }), /^data\.jsonl:3: message 2: expected "role" to be "system", "user" or "assistant", got "bot"$/],
      [line({ messages: [assistant('a')] }), /^data\.jsonl:3: message 1: expected role "user", got "assistant"/],
      [line({ messages: [user('a'), user('b')] }), /^data\.jsonl:3: message 2: expected role "assistant", got "user"/],
      [line({ messages: [user('a'), assistant('')] }), /^data\.jsonl:3: message 2 \(assistant\): expected non-empty "content"$/],
      [line({ messages: [user('a'), { role: 'assistant' }] }), /^data\.jsonl:3: message 2 \(assistant\): expected "content" to be a string, got nothing$/],
      [line({ messages: [user('a'), assistant('b'), user('c')] }), /^data\.jsonl:3: expected the last message to be the assistant's reply, got "user"$/],
      [line({ messages: ['hi'] }), /^data\.jsonl:3: message 1: expected an object with "role" and "content", got "hi"$/],
    ];
    for (const [bad, expected] of cases) {
      expect(() => parseConversationsJsonl([good, '', bad, good].join('\n'), 'data.jsonl')).toThrow(expected);
    }
  });

  it('rejects a file with no conversations and names a missing file', () => {
    expect(() => parseConversationsJsonl('\n\n', 'empty.jsonl')).toThrow(/^empty\.jsonl: expected at least one conversation, found only blank lines$/);
    expect(() => readConversations(join(tmp.dir, 'nope.jsonl'))).toThrow(/cannot read conversations file .*nope\.jsonl/);
  });
});

describe('readPreferences', () => {
  it('reads prompt (string or messages), chosen and rejected', () => {
    const path = join(tmp.fresh(), 'dpo.jsonl');
    writeFileSync(
      path,
      [
        line({ prompt: '1+1=', chosen: '2', rejected: '3' }),
        '',
        line({ prompt: [{ role: 'system', content: 'Math.' }, user('2+2='), assistant('4'), user('and 3+3=')], chosen: '6', rejected: 'six?', source: 'x' }),
      ].join('\n') + '\n',
    );
    expect(readPreferences(path)).toEqual([
      { prompt: [user('1+1=')], chosen: '2', rejected: '3' },
      { prompt: [{ role: 'system', content: 'Math.' }, user('2+2='), assistant('4'), user('and 3+3=')], chosen: '6', rejected: 'six?' },
    ]);
  });

  it('names the file and line of every kind of bad line', () => {
    const good = line({ prompt: 'a', chosen: 'b', rejected: 'c' });
    const cases: Array<[string, RegExp]> = [
      ['{"prompt": "a",', /^prefs\.jsonl:2: expected one JSON object per line, got invalid JSON/],
      [line({ chosen: 'b', rejected: 'c' }), /^prefs\.jsonl:2: expected "prompt" to be a string or an array of messages, got nothing$/],
      [line({ prompt: 5, chosen: 'b', rejected: 'c' }), /^prefs\.jsonl:2: expected "prompt" to be a string or an array of messages, got 5$/],
      [line({ prompt: ' ', chosen: 'b', rejected: 'c' }), /^prefs\.jsonl:2: expected non-empty "prompt"$/],
      [line({ prompt: [user('a'), assistant('b')], chosen: 'b', rejected: 'c' }), /^prefs\.jsonl:2: expected the last message to be from the user \(the prompt to reply to\), got "assistant"$/],
      [line({ prompt: [user('a'), { role: 'human', content: 'b' }], chosen: 'b', rejected: 'c' }), /^prefs\.jsonl:2: "prompt" message 2: expected "role" to be "system", "user" or "assistant", got "human"$/],
      [line({ prompt: [], chosen: 'b', rejected: 'c' }), /^prefs\.jsonl:2: expected at least one message, got an empty "prompt" array$/],
      [line({ prompt: 'a', rejected: 'c' }), /^prefs\.jsonl:2: expected "chosen" to be a non-empty string \(an assistant reply\), got nothing$/],
      [line({ prompt: 'a', chosen: 'b', rejected: '' }), /^prefs\.jsonl:2: expected "rejected" to be a non-empty string \(an assistant reply\), got an empty string$/],
      [line({ prompt: 'a', chosen: ['b'], rejected: 'c' }), /^prefs\.jsonl:2: expected "chosen" to be a non-empty string \(an assistant reply\), got an array$/],
      [line({ prompt: 'a', chosen: 'same', rejected: 'same' }), /^prefs\.jsonl:2: expected "chosen" and "rejected" to differ, got the same text twice$/],
    ];
    for (const [bad, expected] of cases) {
      expect(() => parsePreferencesJsonl([good, bad, good].join('\n'), 'prefs.jsonl')).toThrow(expected);
    }
    expect(() => parsePreferencesJsonl('', 'prefs.jsonl')).toThrow(/^prefs\.jsonl: expected at least one preference pair, found only blank lines$/);
  });
});
