/**
 * Hostile tokenizer files (issue #20, item 2): the pre-tokenisation pattern, the vocabulary and
 * the merges all come from a file that may be broken or malicious. Patterns that match the empty
 * string or backtrack must finish, no text may be lost, every loaded tokenizer must round-trip,
 * and broken files must fail with one short line naming the file and the field.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { countPretokens } from '../../src/tokenizers/bpe-train.js';
import { BPETokenizer, CharTokenizer, GPT2_PATTERN, loadTokenizer, pretokenize, tokenizerFromJSON } from '../../src/tokenizers/index.js';
import { MAX_PATTERN_WINDOW } from '../../src/tokenizers/pretokenize.js';
import { checkRoundTrip, MAX_VOCAB_SIZE, ROUND_TRIP_PROBE } from '../../src/tokenizers/tokenizer.js';
import { ADVERSARIAL_STRINGS, makeTempDir, randomUnicode, REPO_ROOT } from './helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);
afterEach(() => {
  vi.restoreAllMocks();
});

const corpus = 'hello world, the cat sat on the mat. The hat! 123 café 日本 😀\n'.repeat(20);
const small = BPETokenizer.train(corpus, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
const smallChar = CharTokenizer.fromText(corpus, { specialTokens: ['<|bos|>'] });

/** The JSON as files written before pre-tokenizers had names look: a "pattern", no "pretokenizer". */
function legacyJson(pattern: string = GPT2_PATTERN): Record<string, unknown> {
  const json: Record<string, unknown> = { ...small.toJSON(), pattern };
  delete json.pretokenizer;
  return json;
}

function writeJson(name: string, json: unknown): string {
  const path = join(tmp.fresh(), name);
  writeFileSync(path, JSON.stringify(json));
  return path;
}

/** The error `fn` throws, checked to be one line of at most ~300 characters beyond `path`, and never a TypeError from a missing field. */
function cleanError(fn: () => unknown, path = ''): string {
  let message: string | undefined;
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    message = (error as Error).message;
  }
  expect(message, 'expected an error').toBeDefined();
  const text = message as string;
  expect(text).not.toMatch(/Cannot read properties|is not a function|is not iterable|undefined \(reading/);
  expect(text).not.toContain('\n');
  expect(text.length).toBeLessThanOrEqual(path.length + 320);
  if (path !== '') expect(text).toContain(path);
  return text;
}

describe('hostile patterns finish and lose nothing (in a child process, so that a hang fails instead of stalling the run)', () => {
  it('empty-matching patterns on emoji, catastrophic backtracking, quadratic searches, training', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'tests/tokenizers/hostile-child.ts')], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const lines = child.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { cases?: string[]; name?: string; loadMs: number; workMs: number; ok: boolean; error?: string });
    const names = lines[0]?.cases ?? [];
    expect(names.length, `child printed no case list; stderr: ${child.stderr.slice(0, 2000)}`).toBeGreaterThan(5);
    const results = new Map(lines.slice(1).map((r) => [r.name as string, r]));
    const unfinished = names.filter((n) => !results.has(n));
    expect(unfinished, `cases that never finished within 60 s (signal ${child.signal})`).toEqual([]);
    for (const [name, r] of results) {
      expect({ name, ok: r.ok, error: r.error }).toEqual({ name, ok: true, error: undefined });
      // Generous bounds for a loaded 2-core machine; each case takes milliseconds when alone.
      const bound = name.startsWith('mutated') ? 20_000 : name.includes('×20000') || name.includes('×100000') ? 5000 : 1000;
      expect(r.loadMs + r.workMs, `${name} took ${(r.loadMs + r.workMs).toFixed(0)} ms`).toBeLessThan(bound);
    }
    expect(results.get('(a+)+b on a×40')?.workMs ?? Infinity).toBeLessThan(250);
  }, 90_000);
});

describe('user patterns', () => {
  // Patterns that can match the empty string are checked in the child process above (the old
  // code looped forever on them); these never match it.
  const patterns = ['.', '\\p{L}+', '[a-z]+', '(?i:the)|\\s+', "'s|'t| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+"];

  it('split every text into non-empty pieces that concatenate back to it, none longer than the window', () => {
    const texts = [...ADVERSARIAL_STRINGS, randomUnicode(7, 3000), ROUND_TRIP_PROBE];
    for (const pattern of patterns) {
      for (const text of texts) {
        const pieces = pretokenize(text, pattern);
        expect(pieces.join(''), `pattern ${JSON.stringify(pattern)}`).toBe(text);
        expect(pieces.every((p) => p.length > 0 && p.length <= MAX_PATTERN_WINDOW)).toBe(true);
      }
    }
  });

  it('keep unmatched text as pieces of its own (old code dropped it)', () => {
    expect(pretokenize('abc DEF ghi', '[a-z]+')).toEqual(['abc', ' DEF ', 'ghi']);
    const tok = loadTokenizer(writeJson('lossy.json', legacyJson('[a-z]+')));
    expect(tok).toBeInstanceOf(BPETokenizer);
    expect((tok as BPETokenizer).pretokenizer).toBeNull();
    for (const text of ADVERSARIAL_STRINGS) expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('are refused when RE2 cannot run them, with a hint for GPT-2 spelled with lookahead', () => {
    const pythonGpt2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
    const path = writeJson('lookahead.json', legacyJson(pythonGpt2));
    const message = cleanError(() => loadTokenizer(path), path);
    expect(message).toMatch(/"pattern" .* is not a valid RE2 pattern .*use "pretokenizer": "gpt2"/);
    expect(cleanError(() => BPETokenizer.fromJSON(legacyJson('(a')))).toMatch(/"pattern" "\(a" is not a valid RE2 pattern/);
    expect(cleanError(() => BPETokenizer.fromJSON(legacyJson('a'.repeat(5000))))).toMatch(/"pattern": 5000 characters, expected at most 2000/);
    expect(cleanError(() => BPETokenizer.fromJSON(legacyJson('(\\1)')))).toMatch(/not a valid RE2 pattern/);
    expect(() => BPETokenizer.train('abc', { vocabSize: 260, pattern: '(?=a)' })).toThrow(/not a valid RE2 pattern/);
  });

  it('train through the same pre-tokenizer that encodes', () => {
    const texts = ['abc DEF ghi abc', '😀😀 abc'];
    const expected = new Map<string, number>();
    for (const t of texts) for (const p of pretokenize(t, '[a-z]+')) expected.set(p, (expected.get(p) ?? 0) + 1);
    expect(countPretokens(texts, '[a-z]+', [])).toEqual(expected);
    const tok = BPETokenizer.train(texts, { vocabSize: 270, pattern: '[a-z]+' });
    expect(tok.pretokenizer).toBeNull();
    expect(tok.pattern).toBe('[a-z]+');
    expect(tok.toJSON()).not.toHaveProperty('pretokenizer');
    const back = BPETokenizer.fromJSON(tok.toJSON());
    for (const text of [...texts, ...ADVERSARIAL_STRINGS]) expect(back.encode(text)).toEqual(tok.encode(text));
  });
});

describe('built-in pre-tokenizers by name', () => {
  it('map the GPT-2 pattern stored by earlier versions to the built-in, with identical ids', () => {
    const legacy = BPETokenizer.fromJSON(legacyJson());
    expect(legacy.pretokenizer).toBe('gpt2');
    for (const text of [...ADVERSARIAL_STRINGS, corpus]) expect(legacy.encode(text)).toEqual(small.encode(text));
    // Files now name it, and keep the pattern so that earlier versions still read them.
    const path = join(tmp.fresh(), 'named.json');
    small.save(path);
    const saved = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    expect(saved.pretokenizer).toBe('gpt2');
    expect(saved.pattern).toBe(GPT2_PATTERN);
    // The name alone is enough.
    delete saved.pattern;
    expect(BPETokenizer.fromJSON(saved).encode(corpus)).toEqual(small.encode(corpus));
  });

  it('refuse an unknown name, a pattern that contradicts the name, and a file with neither', () => {
    expect(cleanError(() => BPETokenizer.fromJSON({ ...small.toJSON(), pretokenizer: 'gpt5' }))).toMatch(/"pretokenizer": unknown pre-tokenizer "gpt5", expected one of "gpt2"/);
    expect(cleanError(() => BPETokenizer.fromJSON({ ...small.toJSON(), pattern: 'x*' }))).toMatch(/"pattern" does not match "pretokenizer": "gpt2"/);
    const neither: Record<string, unknown> = legacyJson();
    delete neither.pattern;
    expect(cleanError(() => BPETokenizer.fromJSON(neither))).toMatch(/"pretokenizer" .* or "pattern" .* is required/);
    expect(cleanError(() => BPETokenizer.fromJSON({ ...small.toJSON(), pretokenizer: 7 }))).toMatch(/"pretokenizer" must be a string/);
    expect(cleanError(() => BPETokenizer.fromJSON({ ...small.toJSON(), pattern: ['x'] }))).toMatch(/"pattern" must be a string, got an array/);
  });

  it('GPT-2 stays linear on long runs', () => {
    const text = ' '.repeat(200_000) + 'x' + '\u3000'.repeat(100_000) + "'".repeat(100_000) + 'a1'.repeat(50_000);
    const start = performance.now();
    expect(small.decode(small.encodeToInt32Array(text))).toBe(text);
    expect(performance.now() - start).toBeLessThan(3000);
  });
});

describe('round-trip probe at load', () => {
  it('refuses a tokenizer that does not give its text back', () => {
    const dropsEmoji = { encode: (t: string) => [...t].filter((c) => c.length === 1).map((c) => c.charCodeAt(0)), decode: (ids: ArrayLike<number>) => String.fromCharCode(...Array.from(ids)) };
    expect(cleanError(() => checkRoundTrip(dropsEmoji))).toMatch(/does not round-trip its probe text: .* at character \d+/);
    expect(() => checkRoundTrip({ encode: (t: string) => [t.length], decode: () => 'x' }, 'x')).not.toThrow();
  });

  it('runs on every load: a file whose tokenizer loses text is refused with a line naming the file', () => {
    const path = join(tmp.fresh(), 'tok.json');
    small.save(path);
    vi.spyOn(BPETokenizer.prototype, 'decode').mockImplementation(() => 'lost');
    const message = cleanError(() => loadTokenizer(path), path);
    expect(message).toMatch(/^tokenizer file .*tok\.json: BPETokenizer: the tokenizer does not round-trip its probe text/);
    expect(cleanError(() => BPETokenizer.load(path), path)).toMatch(/does not round-trip/);
  });

  it('probes char tokenizers on their own characters', () => {
    const path = join(tmp.fresh(), 'char.json');
    smallChar.save(path);
    expect(loadTokenizer(path).encode('the cat')).toEqual(smallChar.encode('the cat'));
    vi.spyOn(CharTokenizer.prototype, 'decode').mockImplementation(() => '');
    expect(cleanError(() => loadTokenizer(path), path)).toMatch(/CharTokenizer: the tokenizer does not round-trip/);
  });
});

describe('tokenizer files', () => {
  it('accept a UTF-8 BOM at the start', () => {
    const dir = tmp.fresh();
    const bpePath = join(dir, 'bom-bpe.json');
    const charPath = join(dir, 'bom-char.json');
    small.save(bpePath);
    smallChar.save(charPath);
    writeFileSync(bpePath, '\uFEFF' + readFileSync(bpePath, 'utf8'));
    writeFileSync(charPath, '\uFEFF' + readFileSync(charPath, 'utf8'));
    expect(loadTokenizer(bpePath).encode(corpus)).toEqual(small.encode(corpus));
    expect(BPETokenizer.load(bpePath).encode(corpus)).toEqual(small.encode(corpus));
    expect(loadTokenizer(charPath).encode(corpus)).toEqual(smallChar.encode(corpus));
    expect(CharTokenizer.load(charPath).encode(corpus)).toEqual(smallChar.encode(corpus));
    // GPT-2's files too.
    const { vocabJson, mergesTxt } = small.toGPT2();
    expect(BPETokenizer.fromGPT2('\uFEFF' + vocabJson, '\uFEFF' + mergesTxt).encode(corpus)).toEqual(small.encode(corpus));
  });

  it('truncated or garbled JSON fails in one line naming the file', () => {
    const dir = tmp.fresh();
    const full = join(dir, 'full.json');
    small.save(full);
    const text = readFileSync(full, 'utf8');
    const path = join(dir, 'truncated.json');
    for (let k = 0; k < 12; k++) {
      writeFileSync(path, text.slice(0, Math.floor((text.length * k) / 12)));
      expect(cleanError(() => loadTokenizer(path), path)).toMatch(/^cannot read tokenizer file .*truncated\.json: invalid JSON/);
    }
    for (const garbled of ['{not json', '\u0000\u0001', '{"type": "bpe",}', '[1, 2', 'x'.repeat(100_000)]) {
      writeFileSync(path, garbled);
      expect(cleanError(() => loadTokenizer(path), path)).toMatch(/invalid JSON/);
    }
  });

  it('a missing or wrong-typed field is named, with what was expected', () => {
    const json = small.toJSON() as unknown as Record<string, unknown>;
    const cases: Array<[unknown, RegExp]> = [
      [null, /expected a JSON object with "type"/],
      [[json], /got an array/],
      ['bpe', /expected a JSON object/],
      [{ ...json, type: undefined }, /"type" is missing, expected "bpe" or "char"/],
      [{ ...json, version: '1' }, /unsupported version "1"/],
      [{ ...json, vocab: undefined }, /"vocab": expected an object, got nothing \(the field is missing\)/],
      [{ ...json, vocab: [] }, /"vocab": expected an object, got an array/],
      [{ ...json, vocab: { ...(json.vocab as object), x: 'seven' } }, /"vocab": token "x" has invalid id "seven" \(expected an integer/],
      [{ ...json, merges: undefined }, /"merges" must be an array .* got nothing/],
      [{ ...json, merges: 'a b' }, /"merges" must be an array/],
      [{ ...json, merges: [...(json.merges as string[]), 7] }, /"merges" entry \d+ must be a "left right" string, got number 7/],
      [{ ...json, merges: ['Ġ'] }, /"merges": merge 1 "Ġ" is not two tokens/],
      [{ ...json, specialTokens: null }, /"specialTokens": expected an object, got null/],
      [{ ...json, specialTokens: { '<|endoftext|>': -1 } }, /"specialTokens": token "<\|endoftext\|>" has invalid id -1/],
      [{ type: 'char', version: 1 }, /"chars" must be an array of strings/],
      [{ type: 'char', version: 1, chars: ['a', 7] }, /"chars" entry 1 must be a one-character string, got 7/],
      [{ type: 'char', version: 1, chars: ['a'], specialTokens: [] }, /"specialTokens" must be an object/],
    ];
    for (const [value, expected] of cases) {
      const path = writeJson('field.json', value);
      expect(cleanError(() => loadTokenizer(path), path)).toMatch(expected);
    }
  });

  it('inconsistent vocabularies and merges are refused clearly', () => {
    const json = small.toJSON() as unknown as Record<string, unknown>;
    const vocab = json.vocab as Record<string, number>;
    const cases: Array<[unknown, RegExp]> = [
      [{ ...json, merges: [...(json.merges as string[]), 'Ġ qqqq'] }, /merge \d+ "Ġ qqqq" uses a token missing from the vocabulary/],
      [{ ...json, vocab: { ...vocab, zz: 5 } }, /tokens "\S+" and "zz" share id 5 \(expected one id per token\)/],
      [{ ...json, vocab: { ...vocab, zz: MAX_VOCAB_SIZE } }, new RegExp(`token "zz" has invalid id ${MAX_VOCAB_SIZE} \\(expected an integer in \\[0, ${MAX_VOCAB_SIZE}\\)\\)`)],
      [{ ...json, vocab: { ...vocab, zz: 1.5 } }, /token "zz" has invalid id 1\.5/],
      [{ ...json, specialTokens: { '<|endoftext|>': 3 } }, /special token "<\|endoftext\|>" reuses id 3/],
      [{ ...json, specialTokens: { '': 400 } }, /a special token cannot be the empty string/],
      [{ ...json, specialTokens: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`<${i}>`, 1000 + i])) }, /more than 1024 entries/],
      [{ ...json, specialTokens: { ['<' + 'x'.repeat(300) + '>']: 400 } }, /has 302 characters, expected at most 256/],
    ];
    const noSpace = { ...vocab };
    delete noSpace['Ġ'];
    cases.push([{ ...json, vocab: noSpace, merges: [] }, /lacks the single-byte token for byte 0x20/]);
    for (const [value, expected] of cases) {
      const path = writeJson('inconsistent.json', value);
      expect(cleanError(() => loadTokenizer(path), path)).toMatch(expected);
    }
  });

  it('a vocabulary or merges list beyond MAX_VOCAB_SIZE is refused before any table is built', () => {
    const json = small.toJSON() as unknown as Record<string, unknown>;
    let start = performance.now();
    const merges = new Array<string>(MAX_VOCAB_SIZE + 1).fill('Ġ t');
    expect(cleanError(() => BPETokenizer.fromJSON({ ...json, merges }))).toMatch(new RegExp(`"merges" has ${MAX_VOCAB_SIZE + 1} entries, expected at most ${MAX_VOCAB_SIZE} \\(MAX_VOCAB_SIZE\\)`));
    expect(performance.now() - start).toBeLessThan(1000);
    const vocab: Record<string, number> = {};
    for (let i = 0; i <= MAX_VOCAB_SIZE; i++) vocab[`t${i}`] = i % 1000;
    start = performance.now();
    expect(cleanError(() => BPETokenizer.fromJSON({ ...json, vocab }))).toMatch(/"vocab": more than 1048576 entries/);
    expect(performance.now() - start).toBeLessThan(2000);
    expect(() => BPETokenizer.train('abc', { vocabSize: MAX_VOCAB_SIZE + 1 })).toThrow(/at most 1048576/);
    expect(cleanError(() => CharTokenizer.fromJSON({ type: 'char', version: 1, chars: new Array<string>(MAX_VOCAB_SIZE + 1).fill('a') }))).toMatch(/"chars" has 1048577 entries/);
  });

  it('randomly mutated files either load and round-trip or fail in one clean line', () => {
    let state = 12345;
    const rand = (n: number): number => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state % n;
    };
    const junk: unknown[] = [null, 0, -1, 1.5, 1e300, '', 'x', 'Ġ', [], {}, true, MAX_VOCAB_SIZE, { a: 1 }, ['a b']];
    const bpeText = JSON.stringify(small.toJSON());
    const charText = JSON.stringify(smallChar.toJSON());
    const path = join(tmp.fresh(), 'mutant.json');
    let loaded = 0;
    let refused = 0;
    for (let trial = 0; trial < 300; trial++) {
      const isChar = trial % 3 === 2;
      const obj = JSON.parse(isChar ? charText : bpeText) as Record<string, unknown>;
      const fields = Object.keys(obj).filter((k) => k !== 'pattern');
      const field = fields[rand(fields.length)];
      const value = obj[field];
      const kind = rand(4);
      if (kind === 0) delete obj[field];
      else if (kind === 1) obj[field] = junk[rand(junk.length)];
      else if (Array.isArray(value) && value.length > 0) {
        const i = rand(value.length);
        if (rand(2) === 0) value[i] = junk[rand(junk.length)];
        else value.splice(i, 1);
      } else if (value !== null && typeof value === 'object') {
        const keys = Object.keys(value);
        const key = keys[rand(keys.length)];
        if (key !== undefined) {
          if (rand(2) === 0) delete (value as Record<string, unknown>)[key];
          else (value as Record<string, unknown>)[key] = junk[rand(junk.length)];
        }
      } else obj[field] = junk[rand(junk.length)];
      let text = JSON.stringify(obj);
      if (rand(5) === 0) text = text.slice(0, rand(text.length));
      writeFileSync(path, text);
      let tok: ReturnType<typeof loadTokenizer> | undefined;
      try {
        tok = loadTokenizer(path);
      } catch {
        cleanError(() => loadTokenizer(path), path);
        refused++;
        continue;
      }
      loaded++;
      const texts = tok instanceof BPETokenizer ? [...ADVERSARIAL_STRINGS.slice(0, 18), ROUND_TRIP_PROBE] : ['the cat'];
      for (const t of texts) {
        if (tok instanceof CharTokenizer && [...t].some((ch) => !tok.chars.includes(ch))) continue;
        expect(tok.decode(tok.encode(t, { allowSpecial: false }))).toBe(t);
      }
    }
    expect(loaded).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  });
});
