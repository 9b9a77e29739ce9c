/** Shared by the tokenizer and data tests: temp directories and the optional tiny-shakespeare copy. */
import { existsSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** This repository's CI copy of tiny-shakespeare; tests that need it are skipped without it. */
export const SHAKESPEARE_PATH = resolve(REPO_ROOT, '../shared/data/tinyshakespeare.txt');
export const HAVE_SHAKESPEARE = existsSync(SHAKESPEARE_PATH);
export const NO_SHAKESPEARE_REASON = `skipped: ${SHAKESPEARE_PATH} is absent (the repository's CI copy of tiny-shakespeare)`;

/** A fresh temporary directory, removed by the returned cleanup function. */
export function makeTempDir(prefix = 'tensorlm-test-'): { dir: string; cleanup: () => void; fresh: () => string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let counter = 0;
  return {
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    /** A new empty subdirectory, so no test sees another's files. */
    fresh: () => {
      const sub = join(dir, `case-${counter++}`);
      mkdirSync(sub, { recursive: true });
      return sub;
    },
  };
}

/** Strings that tokenizers commonly get wrong. */
export const ADVERSARIAL_STRINGS: readonly string[] = [
  '',
  ' ',
  '\n',
  '\n\n\n',
  '\r\n\r\n',
  '\t\t  \t',
  '   leading spaces',
  'trailing spaces   ',
  'Café naïve résumé',
  'e\u0301 (combining accent)',
  '日本語のテキスト、中文，한국어',
  '😀',
  '👨‍👩‍👧‍👦 family, 👍🏽 tone, 🏳️‍🌈 flag',
  '\u0000\u0001\u007f control',
  '\uFEFFbom and \u0085 next-line and \u2028 separators\u3000ideographic space',
  "I'll you're DON'T it's 'quoted'",
  '1234567890 3.14159 1e-7 0x1F',
  '<|endoftext|> looks special but is not registered',
  'a'.repeat(5000),
  'ab'.repeat(3000),
  ' '.repeat(1000) + 'x',
  '-'.repeat(700) + '\n' + '='.repeat(300),
  'Ṱ̺̺̕o͞ ̷i̲̬͇̪͙n̝̗͕v̟̜̘̦͟o̶̙̰̠kè͚̮̺̪̹̱̤ ̖t̝͕̳̣̻̪͞h̼͓̲̦̳̘̲e͇̣̰̦̬͎ ̢̼̻̱̘h͚͎͙̜̣̲ͅi̦̲̣̰̤v̻͍e̺̭̳̪̰-m̢iͅn̖̺̞̲̯̰d̵̼̟͙̩̼̘̳',
  'mixed: Ünïcödé 123 !!! ??? ... \t\n end',
];

/** Random valid Unicode text (no lone surrogates), deterministic for a seed. */
export function randomUnicode(seed: number, length: number): string {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e],
    [0x09, 0x0d],
    [0xa0, 0x24f],
    [0x370, 0x3ff],
    [0x400, 0x4ff],
    [0x3040, 0x30ff],
    [0x4e00, 0x4fff],
    [0xac00, 0xacff],
    [0x1f300, 0x1f64f],
    [0x2000, 0x206f],
  ];
  let out = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = ranges[next() % ranges.length];
    out += String.fromCodePoint(lo + (next() % (hi - lo + 1)));
  }
  return out;
}

/** A miniature GPT-2 vocabulary: the 256 byte tokens in GPT-2's id order, 4 merges, <|endoftext|> = 260. */
export function miniGPT2(): { vocabJson: string; mergesTxt: string } {
  const printable: number[] = [];
  for (let c = 0x21; c <= 0x7e; c++) printable.push(c);
  for (let c = 0xa1; c <= 0xac; c++) printable.push(c);
  for (let c = 0xae; c <= 0xff; c++) printable.push(c);
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const c of printable) vocab[String.fromCharCode(c)] = id++;
  let shifted = 0;
  for (let byte = 0; byte < 256; byte++) if (!printable.includes(byte)) vocab[String.fromCharCode(256 + shifted++)] = id++;
  Object.assign(vocab, { 'Ġt': 256, he: 257, 'Ġthe': 258, 'Ġa': 259, '<|endoftext|>': 260 });
  return { vocabJson: JSON.stringify(vocab), mergesTxt: '#version: 0.2\nĠ t\nh e\nĠt he\nĠ a\n' };
}
