import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CharTokenizer, loadTokenizer, tokenizerFromJSON } from '../../src/tokenizers/index.js';
import { ADVERSARIAL_STRINGS, HAVE_SHAKESPEARE, makeTempDir, NO_SHAKESPEARE_REASON, randomUnicode, SHAKESPEARE_PATH } from './helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);

describe('CharTokenizer', () => {
  it('uses the sorted distinct characters of the text as its vocabulary', () => {
    const tok = CharTokenizer.fromText('hello world');
    expect(tok.chars).toEqual([' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
    expect(tok.vocabSize).toBe(8);
    expect(tok.encode('hello')).toEqual([3, 2, 4, 4, 5]);
    expect(tok.decode([3, 2, 4, 4, 5])).toBe('hello');
  });

  it('treats astral characters as one token and sorts by code point like Python', () => {
    // U+1F600 sorts after U+FF01 by code point, though its UTF-16 form (D83D…) sorts before.
    const tok = CharTokenizer.fromText('😀！a');
    expect(tok.chars).toEqual(['a', '！', '😀']);
    expect(tok.encode('😀a😀')).toEqual([2, 0, 2]);
    expect(tok.decode([2, 0, 2])).toBe('😀a😀');
  });

  it('round-trips every adversarial string when built from it', () => {
    for (const text of [...ADVERSARIAL_STRINGS, randomUnicode(7, 500)]) {
      const tok = CharTokenizer.fromText(text);
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('keeps a leading BOM and lone surrogates exactly', () => {
    const text = '\uFEFFa\uD800b\uDC00';
    const tok = CharTokenizer.fromText(text);
    expect(tok.vocabSize).toBe(5);
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(Array.from(tok.encodeToInt32Array(text))).toEqual(tok.encode(text));
    // A lone high surrogate in the vocabulary does not swallow the start of a real pair.
    expect(() => tok.encode('\uD800\uDC00')).toThrow(/U\+10000/);
  });

  it('names an unknown character and where it is', () => {
    const tok = CharTokenizer.fromText('abc');
    expect(() => tok.encode('abxc')).toThrow(/character "x" \(U\+0078\) at index 2 is not in the vocabulary \(3 characters\).*unk/);
    expect(() => tok.encode('ab\n')).toThrow(/character U\+000A at index 2/);
    expect(() => tok.decode([0, 3])).toThrow(/id 3 at position 1 is not in the vocabulary \(size 3\)/);
  });

  it('maps unknown characters to an unk token when asked', () => {
    const tok = CharTokenizer.fromText('abc', { unk: '?' });
    expect(tok.vocabSize).toBe(4);
    expect(tok.unkId).toBe(3);
    expect(tok.encode('axé')).toEqual([0, 3, 3]);
    expect(tok.decode([0, 3, 3])).toBe('a??');
  });

  it('saves and loads equal tokenizers', () => {
    const tok = CharTokenizer.fromText('Zebra 🦓 & ünïcode\n', { unk: '<unk>' });
    const path = join(tmp.dir, 'char.json');
    tok.save(path);
    const loaded = CharTokenizer.load(path);
    expect(loaded.toJSON()).toEqual(tok.toJSON());
    expect(loaded.encode('Zebra 🦓?')).toEqual(tok.encode('Zebra 🦓?'));
    expect(loadTokenizer(path)).toBeInstanceOf(CharTokenizer);
    expect(tokenizerFromJSON(tok.toJSON()).vocabSize).toBe(tok.vocabSize);
  });

  it('rejects malformed vocabularies', () => {
    expect(() => new CharTokenizer(['a', 'a'])).toThrow(/"a" \(U\+0061\) appears twice/);
    expect(() => new CharTokenizer(['ab'])).toThrow(/entry 0 \("ab"\) must be exactly one character/);
    const path = join(tmp.dir, 'bad-char.json');
    writeFileSync(path, JSON.stringify({ type: 'char', version: 1, chars: 'abc' }));
    expect(() => CharTokenizer.load(path)).toThrow(/"chars" must be an array of strings/);
    expect(() => tokenizerFromJSON({ type: 'word' })).toThrow(/"type" is "word", expected "bpe" or "char"/);
  });

  it.skipIf(!HAVE_SHAKESPEARE)(`matches nanoGPT's shakespeare-char vocabulary (${HAVE_SHAKESPEARE ? 'file present' : NO_SHAKESPEARE_REASON})`, () => {
    const text = readFileSync(SHAKESPEARE_PATH, 'utf8');
    const tok = CharTokenizer.fromText(text);
    expect(tok.vocabSize).toBe(65);
    expect(tok.chars.join('')).toBe("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    // nanoGPT's prepare.py: encode('hii there') with this vocabulary.
    expect(tok.encode('hii there')).toEqual([46, 47, 47, 1, 58, 46, 43, 56, 43]);
    expect(tok.decode(tok.encode(text))).toBe(text);
  });
});
