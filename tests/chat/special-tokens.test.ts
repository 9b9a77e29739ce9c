/** Special tokens on both tokenizers, as the chat template needs them. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHAT_SPECIAL_TOKENS, ChatTemplate } from '../../src/chat/index.js';
import { BPETokenizer, CharTokenizer, loadTokenizer, tokenizerFromJSON, type Tokenizer } from '../../src/tokenizers/index.js';
import { ADVERSARIAL_STRINGS, HAVE_SHAKESPEARE, makeTempDir, miniGPT2, NO_SHAKESPEARE_REASON, SHAKESPEARE_PATH } from '../tokenizers/helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);

/** Chat-formatted text in which the special strings are frequent, so merges would love them. */
function chatCorpus(): string {
  const turns: string[] = [];
  for (let i = 0; i < 60; i++) {
    turns.push(`<|bos|><|user_start|>what is ${i} plus ${i}?<|user_end|><|assistant_start|>it is ${2 * i}<|assistant_end|>`);
  }
  return turns.join('\n');
}

/** Every id with its decoded text, to compare two tokenizers id by id. */
function idTable(tok: Tokenizer, upTo: number): string[] {
  return Array.from({ length: upTo }, (_, id) => {
    try {
      return tok.decode([id]);
    } catch {
      return '<unused>';
    }
  });
}

describe('BPE special tokens never split or merged', () => {
  const text = chatCorpus();
  const tok = BPETokenizer.train(text, { vocabSize: 400, specialTokens: CHAT_SPECIAL_TOKENS });

  it('encodes each special token as its one id, with the last ids of the vocabulary', () => {
    // Training runs out of pairs before 400 on this small corpus; the specials still come last.
    expect(tok.vocabSize).toBeLessThanOrEqual(400);
    CHAT_SPECIAL_TOKENS.forEach((s, i) => {
      expect(tok.specialTokens[s]).toBe(tok.vocabSize - CHAT_SPECIAL_TOKENS.length + i);
      expect(tok.encode(s)).toEqual([tok.specialTokens[s]]);
      expect(tok.encode(`x${s}y`)).toEqual([...tok.encode('x'), tok.specialTokens[s], ...tok.encode('y')]);
    });
  });

  it('learns no ordinary token that contains any part of a special token boundary', () => {
    // The corpus has "<|" and "|>" only inside special tokens, which training never sees as text.
    // Ids from 256 on are learned merges (below are the single bytes, "|" among them).
    let learned = 0;
    for (let id = 256; id < tok.vocabSize; id++) {
      if (Object.values(tok.specialTokens).includes(id)) continue;
      const piece = new TextDecoder().decode(tok.tokenBytes(id));
      expect(piece, `token ${id}`).not.toContain('|');
      learned++;
    }
    expect(learned).toBeGreaterThan(50);
    // The merges did learn the ordinary text.
    expect(tok.encode(' plus').length).toBe(1);
  });

  it('round-trips the corpus exactly, and with allowSpecial false never produces a special id', () => {
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    const plain = tok.encode(text, { allowSpecial: false });
    const specials = new Set(Object.values(tok.specialTokens));
    expect(plain.some((id) => specials.has(id))).toBe(false);
    expect(tok.decode(plain)).toBe(text);
  });

  it('keeps special ids apart even when the special text was learned as ordinary tokens first', () => {
    // Trained without registering them, the merges do build pieces of "<|user_start|>"...
    const plainTok = BPETokenizer.train(text, { vocabSize: 400 });
    const before = plainTok.encode(text);
    expect(plainTok.encode('<|user_start|>').length).toBeLessThan('<|user_start|>'.length);
    // ...and adding them later still gives each one id, leaves allowSpecial:false encodings unchanged.
    const withChat = plainTok.withSpecialTokens(CHAT_SPECIAL_TOKENS);
    expect(withChat.encode('<|user_start|>')).toEqual([plainTok.vocabSize + 3]);
    expect(withChat.encode(text, { allowSpecial: false })).toEqual(before);
    expect(withChat.decode(withChat.encode(text))).toBe(text);
  });
});

describe('withSpecialTokens', () => {
  it('BPE: appends new specials after vocabSize, keeps existing ids, round-trips through its file', () => {
    const base = BPETokenizer.train(chatCorpus(), { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    const ext = base.withSpecialTokens(['<|endoftext|>', ...CHAT_SPECIAL_TOKENS, '<|bos|>']);
    expect(ext).not.toBe(base);
    expect(ext.vocabSize).toBe(300 + 7);
    expect(ext.specialTokens).toEqual({ '<|endoftext|>': 299, ...Object.fromEntries(CHAT_SPECIAL_TOKENS.map((t, i) => [t, 300 + i])) });
    expect(idTable(ext, 300)).toEqual(idTable(base, 300));
    expect(ext.toJSON().vocab).toEqual(base.toJSON().vocab);
    expect(ext.merges()).toEqual(base.merges());
    for (const s of ADVERSARIAL_STRINGS) expect(ext.encode(s, { allowSpecial: false })).toEqual(base.encode(s, { allowSpecial: false }));
    // Nothing new: the same tokenizer.
    expect(ext.withSpecialTokens(CHAT_SPECIAL_TOKENS)).toBe(ext);
    const path = join(tmp.fresh(), 'bpe-chat.json');
    ext.save(path);
    const loaded = loadTokenizer(path);
    expect(loaded.specialTokens).toEqual(ext.specialTokens);
    expect(loaded.encode(chatCorpus())).toEqual(ext.encode(chatCorpus()));
    expect(() => base.withSpecialTokens(['<|a|>', ''])).toThrow(/withSpecialTokens: token 1 must be a non-empty string, got ""/);
  });

  it('char: appends specials after the characters and unk, keeps every existing id', () => {
    const base = CharTokenizer.fromText('hello', { unk: '?' });
    expect([base.vocabSize, base.unkId]).toEqual([5, 4]);
    const ext = base.withSpecialTokens(CHAT_SPECIAL_TOKENS);
    expect(ext.vocabSize).toBe(12);
    expect(ext.specialTokens['<|bos|>']).toBe(5);
    expect(ext.unkId).toBe(4);
    expect(idTable(ext, 5)).toEqual(idTable(base, 5));
    expect(ext.encode('hello<|bos|>x')).toEqual([1, 0, 2, 2, 3, 5, 4]);
    expect(ext.decode([5, 1, 11])).toBe('<|bos|>h<|assistant_end|>');
    expect(ext.withSpecialTokens(['<|bos|>'])).toBe(ext);
  });
});

describe('CharTokenizer special tokens', () => {
  it('reserves ids after the characters, matches them in encode unless allowSpecial is false', () => {
    const tok = CharTokenizer.fromText('<|>ab', { specialTokens: ['<|a|>', '<|b|>'] });
    expect(tok.chars).toEqual(['<', '>', 'a', 'b', '|']);
    expect(tok.specialTokens).toEqual({ '<|a|>': 5, '<|b|>': 6 });
    expect(tok.vocabSize).toBe(7);
    expect(tok.encode('a<|b|>b<|a|>')).toEqual([2, 6, 3, 5]);
    expect(tok.encodeToInt32Array('a<|b|>b<|a|>')).toEqual(Int32Array.from([2, 6, 3, 5]));
    expect(tok.encode('a<|b|>', { allowSpecial: false })).toEqual([2, 0, 4, 3, 4, 1]);
    expect(tok.decode([2, 6, 3, 5])).toBe('a<|b|>b<|a|>');
    expect(tok.idToToken(6)).toBe('<|b|>');
    expect(tok.tokenToId('<|b|>')).toBe(6);
    expect(tok.tokenToId('a')).toBe(2);
  });

  it('prefers the longest special token and names unknown characters at their index in the whole text', () => {
    const tok = CharTokenizer.fromText('xy', { specialTokens: ['<a>', '<a><b>'] });
    expect(tok.encode('<a><b>x<a>')).toEqual([tok.specialTokens['<a><b>'], 0, tok.specialTokens['<a>']]);
    expect(() => tok.encode('x<a>yz')).toThrow(/character "z" \(U\+007A\) at index 5 is not in the vocabulary/);
    expect(() => tok.encode('<a>', { allowSpecial: false })).toThrow(/character "<" \(U\+003C\) at index 0/);
  });

  it('saves specials in its JSON; old files without them still load', () => {
    const tok = CharTokenizer.fromText('Hi there!\n', { unk: '?', specialTokens: CHAT_SPECIAL_TOKENS });
    const path = join(tmp.fresh(), 'char-chat.json');
    tok.save(path);
    const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    expect(json.specialTokens).toEqual(tok.specialTokens);
    expect(json.unkId).toBeUndefined(); // unk sits right after the characters, the default
    const loaded = CharTokenizer.load(path);
    expect(loaded.toJSON()).toEqual(tok.toJSON());
    expect(idTable(loaded, tok.vocabSize)).toEqual(idTable(tok, tok.vocabSize));
    expect(new ChatTemplate(loaded).render({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'there!' }] }).ids).toEqual(
      new ChatTemplate(tok).render({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'there!' }] }).ids,
    );

    // A file from before special tokens: no "specialTokens", no "unkId".
    const oldPath = join(tmp.fresh(), 'old-char.json');
    writeFileSync(oldPath, '{\n  "type": "char",\n  "version": 1,\n  "chars": ["a","b"],\n  "unk": "?"\n}\n');
    const old = loadTokenizer(oldPath);
    expect(old.vocabSize).toBe(3);
    expect(old.specialTokens).toEqual({});
    expect(old.encode('abz')).toEqual([0, 1, 2]);
    // And a plain tokenizer still writes exactly that layout.
    (old as CharTokenizer).save(oldPath);
    expect(readFileSync(oldPath, 'utf8')).toBe('{\n  "type": "char",\n  "version": 1,\n  "chars": ["a","b"],\n  "unk": "?"\n}\n');
  });

  it('rejects bad special tokens in options and files', () => {
    expect(() => CharTokenizer.fromText('ab', { specialTokens: [''] })).toThrow(/special token cannot be the empty string/);
    expect(() => tokenizerFromJSON({ type: 'char', version: 1, chars: ['a'], specialTokens: { '<s>': -1 } })).toThrow(/special token "<s>" has invalid id -1/);
    expect(() => tokenizerFromJSON({ type: 'char', version: 1, chars: ['a'], specialTokens: ['<s>'] })).toThrow(/"specialTokens" must be an object of token → id/);
    expect(() => tokenizerFromJSON({ type: 'char', version: 1, chars: ['a'], unk: '?', specialTokens: { '<s>': 1 } })).toThrow(/special token "<s>" reuses id 1 \(of "\?"\)/);
    expect(() => new CharTokenizer(['a'], { unkId: 3 })).toThrow(/unkId is set but unk is not/);
  });
});

describe('CharTokenizer.withCharacters', () => {
  it('appends new characters in code point order after every existing id, which stay as they were', () => {
    // A Shakespeare-like base model: letters and punctuation, no digits; chat tokens added after.
    const base = CharTokenizer.fromText('To be, or not to be', { unk: '?' }).withSpecialTokens(CHAT_SPECIAL_TOKENS);
    const oldSize = base.vocabSize;
    const ext = base.withCharacters('12+3=0 be');
    expect(ext.vocabSize).toBe(oldSize + 6);
    expect(idTable(ext, oldSize)).toEqual(idTable(base, oldSize));
    expect(['+', '0', '1', '2', '3', '='].map((c) => ext.tokenToId(c))).toEqual([oldSize, oldSize + 1, oldSize + 2, oldSize + 3, oldSize + 4, oldSize + 5]);
    expect(ext.encode('12+3=')).toEqual([oldSize + 2, oldSize + 3, oldSize, oldSize + 4, oldSize + 5]);
    expect(ext.unkId).toBe(base.unkId);
    expect(ext.specialTokens).toEqual(base.specialTokens);
    // The file records unk's id, now that it is no longer right after the characters.
    const json = ext.toJSON();
    expect(json.unkId).toBe(base.unkId);
    const back = CharTokenizer.fromJSON(JSON.parse(JSON.stringify(json)));
    expect(idTable(back, ext.vocabSize)).toEqual(idTable(ext, ext.vocabSize));
    expect(back.encode('To be<|bos|>12 x')).toEqual(ext.encode('To be<|bos|>12 x'));
    // Adding characters to the extended one keeps going after its last id.
    const again = ext.withCharacters(['9']);
    expect(again.tokenToId('9')).toBe(ext.vocabSize);
    expect(ext.withCharacters('0123')).toBe(ext);
  });

  it.skipIf(!HAVE_SHAKESPEARE)(`gives the ids docs/tokenizers.md shows for shakespeare-char (${HAVE_SHAKESPEARE ? 'file present' : NO_SHAKESPEARE_REASON})`, () => {
    const base = CharTokenizer.fromText(readFileSync(SHAKESPEARE_PATH, 'utf8'));
    const tok = base.withCharacters('0123456789+=').withSpecialTokens(CHAT_SPECIAL_TOKENS);
    expect([tok.tokenToId('+'), tok.tokenToId('='), tok.tokenToId('3')]).toEqual([65, 75, base.tokenToId('3')]);
    expect([tok.specialTokens['<|bos|>'], tok.specialTokens['<|assistant_end|>'], tok.vocabSize]).toEqual([76, 82, 83]);
    expect(tok.encode('hii there')).toEqual([46, 47, 47, 1, 58, 46, 43, 56, 43]);
  });

  it('rejects entries that are not one character', () => {
    expect(() => CharTokenizer.fromText('a').withCharacters(['b', 'cd'])).toThrow(/withCharacters: entry 1 \("cd"\) must be exactly one character/);
    // An astral character is one character.
    expect(CharTokenizer.fromText('a').withCharacters(['😀']).encode('😀a')).toEqual([1, 0]);
  });
});

describe('GPT-2 vocab.json + merges.txt with chat special tokens', () => {
  it('appends requested special tokens missing from vocab.json after its largest id', () => {
    const dir = tmp.fresh();
    const { vocabJson, mergesTxt } = miniGPT2();
    writeFileSync(join(dir, 'vocab.json'), vocabJson);
    writeFileSync(join(dir, 'merges.txt'), mergesTxt);
    const tok = BPETokenizer.loadGPT2(join(dir, 'vocab.json'), join(dir, 'merges.txt'), { specialTokens: ['<|endoftext|>', ...CHAT_SPECIAL_TOKENS] });
    expect(tok.vocabSize).toBe(261 + 7);
    expect(tok.specialTokens).toEqual({ '<|endoftext|>': 260, ...Object.fromEntries(CHAT_SPECIAL_TOKENS.map((t, i) => [t, 261 + i])) });
    // GPT-2's own ids are untouched.
    expect(tok.encode(' the cat<|endoftext|>')).toEqual([258, 220, 66, 64, 83, 260]);
    const template = new ChatTemplate(tok);
    const { ids } = template.render({ messages: [{ role: 'user', content: ' the' }, { role: 'assistant', content: ' a' }] });
    expect(ids).toEqual([261, 264, 258, 265, 266, 259, 267]);
    expect(template.assistantEnd).toBe(267);
    // toGPT2 writes them into vocab.json; loading that back gives the same ids.
    const written = tok.toGPT2();
    const again = BPETokenizer.fromGPT2(written.vocabJson, written.mergesTxt, { specialTokens: ['<|endoftext|>', ...CHAT_SPECIAL_TOKENS] });
    expect(again.specialTokens).toEqual(tok.specialTokens);
    expect(again.toJSON()).toEqual(tok.toJSON());
  });
});
