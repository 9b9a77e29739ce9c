/**
 * Seeded mutators for every file format TensorLM reads. Each takes the bytes of a valid seed file
 * and a seeded Rng and returns the mutated bytes plus a short description (`kind`: the mutator,
 * `desc`: what exactly it did), so a failing case can be named and re-run.
 *
 * Three families:
 * - bytes: flips, overwrites, truncation, junk appended or inserted, deleted or duplicated
 *   ranges, a BOM, invalid UTF-8, an empty file;
 * - JSON: edits that keep the text valid JSON but are semantically hostile (wrong types, huge,
 *   negative, fractional or NaN-like numbers, deep nesting, giant strings and arrays, duplicate
 *   keys, unknown fields), plus per-format edits (safetensors header and checkpoint metadata,
 *   tokenizer vocabularies, merges and patterns, CSV cells, rows and columns);
 * - equivalent rewrites (reordered keys, re-padded header, pretty-printed JSON, CRLF…), which a
 *   loader must accept unchanged: they check the "load-equivalent" path.
 */
import { createHash } from 'node:crypto';
import { Rng } from './rng.js';

export const FORMATS = ['checkpoint', 'tokenizer-char', 'tokenizer-bpe', 'config', 'config-file', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

export interface Mutation {
  bytes: Uint8Array;
  /** The mutator's name (outcomes are grouped by it). */
  kind: string;
  /** What it did, in a few words. */
  desc: string;
}

type Mutator = (seed: Uint8Array, rng: Rng) => Mutation;

const enc = new TextEncoder();
const dec = new TextDecoder();

function m(bytes: Uint8Array | string, kind: string, desc: string): Mutation {
  return { bytes: typeof bytes === 'string' ? enc.encode(bytes) : bytes, kind, desc };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function short(v: unknown, max = 60): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

// ---- byte-level mutators (every format) -------------------------------------------------------

/** Byte mutators; `region` limits where they act (e.g. the safetensors header), default the whole file. */
function byteMutators(region?: (seed: Uint8Array) => [number, number]): Mutator[] {
  const span = (seed: Uint8Array, rng: Rng): number => {
    const [lo, hi] = region ? region(seed) : [0, seed.length];
    return hi > lo ? rng.range(lo, hi - 1) : 0;
  };
  const where = region ? ' in the header' : '';
  return [
    (seed, rng) => {
      const out = seed.slice();
      const n = rng.range(1, 8);
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = span(seed, rng);
        out[p] ^= 1 << rng.int(8);
        at.push(p);
      }
      return m(out, 'bit-flip', `${n} bit(s) flipped${where} at ${at.slice(0, 4).join(',')}`);
    },
    (seed, rng) => {
      const out = seed.slice();
      const values = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d, 0x2c, 0x5c, 0x39, 0x2d, 0x2e, 0x0a, 0x20, 0x3a, 0x5b, 0x5d];
      const p = span(seed, rng);
      const v = rng.pick(values);
      out[p] = v;
      return m(out, 'byte-set', `byte ${p}${where} set to 0x${v.toString(16)}`);
    },
    (seed, rng) => {
      const len = rng.chance(0.3) ? rng.pick([0, 1, 7, 8, 9, seed.length - 1]) : rng.int(seed.length);
      const cut = Math.max(0, Math.min(seed.length - 1, len));
      return m(seed.slice(0, cut), 'truncate', `truncated to ${cut} of ${seed.length} bytes`);
    },
    (seed, rng) => {
      const kind = rng.pick(['random', 'zeros', 'text', 'copy'] as const);
      const n = rng.pick([1, 3, 8, 100, 4096]);
      const junk = kind === 'random' ? rng.bytes(n) : kind === 'zeros' ? new Uint8Array(n) : kind === 'text' ? enc.encode('junk,'.repeat(n).slice(0, n)) : seed.slice(0, Math.min(n, seed.length));
      return m(concat(seed, junk), 'extend-junk', `${n} ${kind} bytes appended`);
    },
    (seed, rng) => {
      const p = span(seed, rng);
      const n = rng.pick([1, 2, 5, 64]);
      return m(concat(seed.subarray(0, p), rng.bytes(n), seed.subarray(p)), 'insert-junk', `${n} random bytes inserted${where} at ${p}`);
    },
    (seed, rng) => {
      const p = span(seed, rng);
      const n = rng.pick([1, 2, 8, 100]);
      return m(concat(seed.subarray(0, p), seed.subarray(Math.min(seed.length, p + n))), 'delete-range', `${n} bytes deleted${where} at ${p}`);
    },
    (seed, rng) => {
      const p = span(seed, rng);
      const n = rng.pick([1, 4, 16, 200]);
      const q = span(seed, rng);
      return m(concat(seed.subarray(0, q), seed.subarray(p, p + n), seed.subarray(q)), 'duplicate-range', `bytes ${p}..${p + n} copied${where} to ${q}`);
    },
    (seed) => m(concat(new Uint8Array([0xef, 0xbb, 0xbf]), seed), 'bom', 'UTF-8 BOM prepended'),
    (seed, rng) => {
      const seqs: [string, number[]][] = [
        ['0xff', [0xff]],
        ['lone continuation 0x80', [0x80]],
        ['truncated 2-byte 0xc3', [0xc3]],
        ['0xc3 0x28', [0xc3, 0x28]],
        ['overlong 0xc0 0xaf', [0xc0, 0xaf]],
        ['surrogate 0xed 0xa0 0x80', [0xed, 0xa0, 0x80]],
        ['UTF-16LE BOM', [0xff, 0xfe]],
      ];
      const [name, bytes] = rng.pick(seqs);
      const p = span(seed, rng);
      return m(concat(seed.subarray(0, p), new Uint8Array(bytes), seed.subarray(p)), 'invalid-utf8', `${name} inserted${where} at ${p}`);
    },
    () => m(new Uint8Array(0), 'empty', 'empty file'),
  ];
}

// ---- JSON helpers ---------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

/** Paths of every value in `v` (objects and arrays included), breadth first, at most `limit`. */
function paths(v: Json, limit = 5000): { path: Path; value: Json }[] {
  const out: { path: Path; value: Json }[] = [];
  const queue: { path: Path; value: Json }[] = [{ path: [], value: v }];
  while (queue.length > 0 && out.length < limit) {
    const item = queue.shift() as { path: Path; value: Json };
    out.push(item);
    const { path, value } = item;
    if (Array.isArray(value)) value.forEach((x, i) => queue.push({ path: [...path, i], value: x }));
    else if (value !== null && typeof value === 'object') for (const [k, x] of Object.entries(value)) queue.push({ path: [...path, k], value: x });
  }
  return out;
}

function setAt(root: Json, path: Path, value: Json | undefined): Json {
  if (path.length === 0) return value === undefined ? null : value;
  let cur = root as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) cur = cur[key] as Record<string | number, Json>;
  const last = path[path.length - 1];
  if (value === undefined) {
    if (Array.isArray(cur)) cur.splice(last as number, 1);
    else delete cur[last];
  } else cur[last] = value;
  return root;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * JSON text with raw fragments that JSON.stringify cannot make (deep nesting built as text,
 * 1e400, duplicate keys): `raw(text)` returns a placeholder string to put in the object.
 */
class RawJson {
  private readonly fragments: string[] = [];
  raw(text: string): string {
    this.fragments.push(text);
    return `__RAW_${this.fragments.length - 1}__`;
  }
  stringify(v: Json, indent?: number): string {
    let s = JSON.stringify(v, null, indent);
    this.fragments.forEach((text, i) => {
      s = s.split(`"__RAW_${i}__"`).join(text);
    });
    return s;
  }
}

/** Hostile replacement values for a JSON leaf (as raw JSON text). */
const HOSTILE_VALUES: readonly string[] = [
  '-5',
  '-1',
  '0',
  '-0',
  '0.5',
  '2.5',
  '1e9',
  '1e308',
  '1e400',
  '-1e400',
  '9007199254740993',
  '4294967296',
  '"NaN"',
  '"Infinity"',
  '"-Infinity"',
  '"1e9"',
  '"5"',
  '""',
  'null',
  'true',
  'false',
  '[]',
  '{}',
  '[1,2,3]',
  '{"__proto__":{"polluted":1}}',
  '"\\u0000"',
  '"\\ud800"',
];

function deepNest(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** Generic structural JSON edits of the whole document (used by every JSON format). */
function jsonMutators(): ((doc: Json, rng: Rng) => { text: string; kind: string; desc: string })[] {
  return [
    (doc, rng) => {
      const all = paths(doc).filter((p) => p.path.length > 0);
      const target = rng.pick(all);
      const raw = new RawJson();
      const value = rng.pick(HOSTILE_VALUES);
      const out = setAt(clone(doc), target.path, raw.raw(value));
      return { text: raw.stringify(out), kind: 'json-hostile-value', desc: `${target.path.join('.')} = ${value} (was ${short(target.value, 30)})` };
    },
    (doc, rng) => {
      const all = paths(doc).filter((p) => p.path.length > 0);
      const target = rng.pick(all);
      return { text: JSON.stringify(setAt(clone(doc), target.path, undefined)), kind: 'json-delete', desc: `${target.path.join('.')} removed` };
    },
    (doc, rng) => {
      const objects = paths(doc).filter((p) => p.value !== null && typeof p.value === 'object' && !Array.isArray(p.value));
      const target = rng.pick(objects);
      const key = rng.pick(['extra', '__proto__', 'constructor', '', 'version']);
      const raw = new RawJson();
      const obj = clone(doc);
      const holder = (target.path.length === 0 ? obj : (paths(obj).find((p) => p.path.join('\u0000') === target.path.join('\u0000'))?.value as Json)) as Record<string, Json>;
      const value = rng.pick(HOSTILE_VALUES);
      // Object.defineProperty so that "__proto__" becomes an own key (JSON.parse makes it one too).
      Object.defineProperty(holder, key, { value: raw.raw(value), enumerable: true, configurable: true, writable: true });
      return { text: raw.stringify(obj), kind: 'json-extra-key', desc: `key ${JSON.stringify(key)}: ${value} added at ${target.path.join('.') || '(root)'}` };
    },
    (doc, rng) => {
      // A duplicate key: JSON.parse keeps the last one.
      const objects = paths(doc).filter((p) => p.value !== null && typeof p.value === 'object' && !Array.isArray(p.value) && Object.keys(p.value).length > 0);
      const target = rng.pick(objects);
      const key = rng.pick(Object.keys(target.value as object));
      const value = rng.pick(HOSTILE_VALUES);
      const raw = new RawJson();
      const obj = clone(doc);
      const holder = (target.path.length === 0 ? obj : (paths(obj).find((p) => p.path.join('\u0000') === target.path.join('\u0000'))?.value as Json)) as Record<string, Json>;
      const original = holder[key];
      holder[key] = raw.raw(`${JSON.stringify(original)},${JSON.stringify(key)}:${value}`);
      const text = raw.stringify(obj);
      return { text, kind: 'json-duplicate-key', desc: `key ${target.path.concat(key).join('.')} repeated with ${value}` };
    },
    (doc, rng) => {
      const all = paths(doc).filter((p) => p.path.length > 0);
      const target = rng.pick(all);
      const depth = rng.pick([100, 5000, 200_000]);
      const kind = rng.pick(['array', 'object'] as const);
      const raw = new RawJson();
      const out = setAt(clone(doc), target.path, raw.raw(deepNest(depth, kind)));
      return { text: raw.stringify(out), kind: 'json-deep-nesting', desc: `${target.path.join('.')} = ${kind} nested ${depth} deep` };
    },
    (doc, rng) => {
      const all = paths(doc).filter((p) => p.path.length > 0);
      const target = rng.pick(all);
      const size = rng.pick([10_000, 1_000_000, 20_000_000]);
      const kind = rng.pick(['string', 'array-of-numbers', 'array-of-strings'] as const);
      const raw = new RawJson();
      const text = kind === 'string' ? JSON.stringify('x'.repeat(size)) : kind === 'array-of-numbers' ? `[${'1,'.repeat(Math.floor(size / 2))}1]` : `[${'"a",'.repeat(Math.floor(size / 4))}"a"]`;
      const out = setAt(clone(doc), target.path, raw.raw(text));
      return { text: raw.stringify(out), kind: 'json-giant', desc: `${target.path.join('.')} = giant ${kind} (${text.length} chars)` };
    },
    (doc, rng) => {
      const top = rng.pick(['[]', 'null', '"string"', '42', '[{}]', '{}']);
      return { text: top, kind: 'json-top-level', desc: `document replaced by ${top}` };
    },
    (doc, rng) => {
      // Change the type of a whole object/array value.
      const containers = paths(doc).filter((p) => p.path.length > 0 && p.value !== null && typeof p.value === 'object');
      if (containers.length === 0) return { text: JSON.stringify(doc), kind: 'json-retype', desc: 'no containers' };
      const target = rng.pick(containers);
      const value = Array.isArray(target.value) ? (Object.fromEntries(target.value.map((x, i) => [String(i), x])) as Json) : Object.values(target.value as object);
      return { text: JSON.stringify(setAt(clone(doc), target.path, value)), kind: 'json-retype', desc: `${target.path.join('.')} ${Array.isArray(target.value) ? 'array → object' : 'object → array'}` };
    },
  ];
}

/** Rewrites that keep the document's meaning: the loader must return the same thing. */
function jsonEquivalents(): ((doc: Json, rng: Rng) => { text: string; kind: string; desc: string })[] {
  return [
    (doc) => ({ text: JSON.stringify(doc, null, 2), kind: 'equiv-pretty', desc: 'pretty-printed (indent 2)' }),
    (doc) => ({ text: JSON.stringify(doc), kind: 'equiv-compact', desc: 'compact JSON' }),
    (doc) => ({ text: `\n\t ${JSON.stringify(doc)} \r\n\n`, kind: 'equiv-whitespace', desc: 'surrounding whitespace' }),
    (doc, rng) => {
      const reorder = (v: Json): Json => {
        if (Array.isArray(v)) return v.map(reorder);
        if (v !== null && typeof v === 'object') {
          const entries = Object.entries(v);
          for (let i = entries.length - 1; i > 0; i--) {
            const j = rng.int(i + 1);
            [entries[i], entries[j]] = [entries[j], entries[i]];
          }
          const out: Record<string, Json> = {};
          for (const [k, x] of entries) Object.defineProperty(out, k, { value: reorder(x), enumerable: true, configurable: true, writable: true });
          return out;
        }
        return v;
      };
      return { text: JSON.stringify(reorder(doc)), kind: 'equiv-key-order', desc: 'object keys shuffled' };
    },
  ];
}

function parseJsonSeed(seed: Uint8Array): Json {
  return JSON.parse(dec.decode(seed)) as Json;
}

/** Picks a mutator family by weight and applies it. */
function jsonFormat(extra: readonly (readonly [(doc: Json, rng: Rng) => { text: string; kind: string; desc: string }, number])[]): Mutator {
  const bytes = byteMutators();
  const generic = jsonMutators();
  const equiv = jsonEquivalents();
  return (seed, rng) => {
    const family = rng.weighted([
      ['bytes', 3],
      ['json', 3],
      ['equiv', 1],
      ['format', extra.length > 0 ? 5 : 0],
    ] as const);
    if (family === 'bytes') return rng.pick(bytes)(seed, rng);
    const doc = parseJsonSeed(seed);
    const chosen = family === 'json' ? rng.pick(generic) : family === 'equiv' ? rng.pick(equiv) : rng.weighted(extra);
    const r = chosen(doc, rng);
    return m(r.text, r.kind, r.desc);
  };
}

// ---- safetensors / checkpoints ---------------------------------------------------------------------

interface SafetensorsParts {
  header: Record<string, Json>;
  headerLength: number;
  data: Uint8Array;
}

function splitSafetensors(seed: Uint8Array): SafetensorsParts {
  const n = Number(new DataView(seed.buffer, seed.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(dec.decode(seed.subarray(8, 8 + n))) as Record<string, Json>;
  return { header, headerLength: n, data: seed.subarray(8 + n) };
}

function joinSafetensors(headerText: string, data: Uint8Array, options: { pad?: boolean; length?: bigint } = {}): Uint8Array {
  let bytes: Uint8Array = enc.encode(headerText);
  if (options.pad !== false) {
    const pad = (8 - (bytes.length % 8)) % 8;
    bytes = concat(bytes, new Uint8Array(pad).fill(0x20));
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, options.length ?? BigInt(bytes.length), true);
  return concat(prefix, bytes, data);
}

type HeaderEdit = (p: SafetensorsParts, rng: Rng) => { header?: Record<string, Json>; text?: string; data?: Uint8Array; kind: string; desc: string; pad?: boolean; length?: bigint };

function tensorNames(h: Record<string, Json>): string[] {
  return Object.keys(h).filter((k) => k !== '__metadata__');
}

function entry(h: Record<string, Json>, name: string): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  return h[name] as unknown as { dtype: string; shape: number[]; data_offsets: [number, number] };
}

const safetensorsEdits: readonly (readonly [HeaderEdit, number])[] = [
  [
    (p, rng) => {
      const h = clone(p.header);
      const name = rng.pick(tensorNames(h));
      const dtype = rng.pick(['F16', 'BF16', 'I32', 'U8', 'I8', 'F64', 'I64', 'BOOL', 'f32', 'F8_E4M3', '', 'float32']);
      entry(h, name).dtype = dtype;
      return { header: h, kind: 'st-dtype-relabel', desc: `${name}.dtype = ${dtype}` };
    },
    3,
  ],
  [
    (p, rng) => {
      const h = clone(p.header);
      const name = rng.pick(tensorNames(h));
      const e = entry(h, name);
      const old = e.shape.slice();
      const size = old.reduce((a, b) => a * b, 1);
      const choice = rng.pick(['reverse', 'flatten', 'append-1', 'prepend-1', 'double', 'minus-1', 'scalar', 'negative', 'fraction', 'string', 'huge', 'giant-array', 'zero'] as const);
      const raw = new RawJson();
      let shape: Json;
      switch (choice) {
        case 'reverse': shape = old.slice().reverse(); break;
        case 'flatten': shape = [size]; break;
        case 'append-1': shape = [...old, 1]; break;
        case 'prepend-1': shape = [1, ...old]; break;
        case 'double': shape = old.map((d, i) => (i === 0 ? d * 2 : d)); break;
        case 'minus-1': shape = old.map((d, i) => (i === 0 ? d - 1 : d)); break;
        case 'scalar': shape = []; break;
        case 'negative': shape = old.map((d, i) => (i === 0 ? -d : d)); break;
        case 'fraction': shape = old.map((d, i) => (i === 0 ? d + 0.5 : d)); break;
        case 'string': shape = old.map((d) => String(d)); break;
        case 'huge': shape = [1e15, ...old.slice(1)]; break;
        case 'giant-array': shape = raw.raw(`[${'1,'.repeat(200_000)}${size}]`); break;
        case 'zero': shape = [0, ...old.slice(1)]; break;
      }
      (h[name] as Record<string, Json>).shape = shape;
      return { text: raw.stringify(h), kind: `st-shape-${choice}`, desc: `${name}.shape ${JSON.stringify(old)} → ${choice === 'giant-array' ? `[1 × 200000, ${size}]` : short(shape)}` };
    },
    4,
  ],
  [
    (p, rng) => {
      const h = clone(p.header);
      const names = tensorNames(h);
      const name = rng.pick(names);
      const e = entry(h, name);
      const [b, end] = e.data_offsets;
      const len = end - b;
      const size = p.data.length;
      const sameSize = names.filter((n) => n !== name && entry(h, n).data_offsets[1] - entry(h, n).data_offsets[0] === len);
      const choice = rng.pick(['overlap-same-size', 'shift-4', 'out-of-range', 'negative', 'reversed', 'fraction', 'string', 'huge', 'three', 'empty', 'past-end'] as const);
      let off: Json;
      switch (choice) {
        case 'overlap-same-size': off = sameSize.length > 0 ? entry(h, rng.pick(sameSize)).data_offsets : [b + 4, end + 4]; break;
        case 'shift-4': off = end + 4 <= size ? [b + 4, end + 4] : [b - 4, end - 4]; break;
        case 'out-of-range': off = [size - len + 4, size + 4]; break;
        case 'negative': off = [-4, len - 4]; break;
        case 'reversed': off = [end, b]; break;
        case 'fraction': off = [b + 0.5, end + 0.5]; break;
        case 'string': off = [String(b), String(end)]; break;
        case 'huge': off = [2 ** 60, 2 ** 60 + len]; break;
        case 'three': off = [b, end, end]; break;
        case 'empty': off = [b, b]; break;
        case 'past-end': off = [size, size + len]; break;
      }
      (h[name] as Record<string, Json>).data_offsets = off;
      return { header: h, kind: `st-offsets-${choice}`, desc: `${name}.data_offsets [${b},${end}] → ${short(off)}` };
    },
    4,
  ],
  [
    (p, rng) => {
      // A duplicate tensor key: the first entry as written, then a second with other offsets.
      const names = tensorNames(p.header);
      const name = rng.pick(names);
      const other = rng.pick(names);
      const text = JSON.stringify(p.header);
      const dup = `${JSON.stringify(name)}:${JSON.stringify(p.header[other])}`;
      return { text: text.slice(0, -1) + ',' + dup + '}', kind: 'st-duplicate-key', desc: `'${name}' repeated with the entry of '${other}'` };
    },
    2,
  ],
  [
    (p, rng) => {
      const h = clone(p.header);
      const names = tensorNames(h);
      const src = entry(h, rng.pick(names));
      const name = rng.pick(['extra.weight', 'optimizer.99.m', 'layers.7.attn.wq.weight', '__proto__', '', 'tokEmb.weight ', 'constructor']);
      Object.defineProperty(h, name, { value: clone(src) as unknown as Json, enumerable: true, configurable: true, writable: true });
      return { header: h, kind: 'st-extra-tensor', desc: `extra tensor '${name}' over existing bytes` };
    },
    2,
  ],
  [
    (p, rng) => {
      const h = clone(p.header);
      const name = rng.pick(tensorNames(h));
      delete h[name];
      return { header: h, kind: 'st-remove-tensor', desc: `tensor '${name}' removed from the header` };
    },
    2,
  ],
  [
    (p, rng) => {
      const h = clone(p.header);
      const name = rng.pick(tensorNames(h));
      const value = rng.pick(['null', '42', '"F32"', '[]', '{}', '{"dtype":"F32"}']);
      const raw = new RawJson();
      h[name] = raw.raw(value);
      return { text: raw.stringify(h), kind: 'st-entry-retype', desc: `entry '${name}' = ${value}` };
    },
    1,
  ],
  [
    (p, rng) => {
      // The header length prefix disagrees with the header.
      const choice = rng.pick(['minus-1', 'plus-1', 'plus-8', 'zero', 'max', 'file-size', 'minus-8'] as const);
      const n = BigInt(p.headerLength);
      const total = BigInt(8 + p.headerLength + p.data.length);
      const length = { 'minus-1': n - 1n, 'plus-1': n + 1n, 'plus-8': n + 8n, zero: 0n, max: 2n ** 64n - 1n, 'file-size': total, 'minus-8': n - 8n }[choice];
      return { text: JSON.stringify(p.header), kind: `st-length-${choice}`, desc: `header length prefix ${choice} (${length})`, length, pad: true };
    },
    2,
  ],
  [
    (p, rng) => {
      // Header JSON padded in unusual ways (equivalent) or not padded at all.
      const choice = rng.pick(['no-pad', 'extra-spaces', 'pretty', 'key-order'] as const);
      if (choice === 'no-pad') return { text: JSON.stringify(p.header), pad: false, kind: 'equiv-st-no-pad', desc: 'header not padded to 8 bytes' };
      if (choice === 'extra-spaces') return { text: JSON.stringify(p.header) + ' '.repeat(rng.range(1, 64)), kind: 'equiv-st-extra-spaces', desc: 'header with trailing spaces' };
      if (choice === 'pretty') return { text: JSON.stringify(p.header, null, 1), kind: 'equiv-st-pretty', desc: 'header pretty-printed' };
      const keys = Object.keys(p.header).reverse();
      const h: Record<string, Json> = {};
      for (const k of keys) h[k] = p.header[k];
      return { header: h, kind: 'equiv-st-key-order', desc: 'header keys reversed' };
    },
    2,
  ],
  [
    (p, rng) => {
      // Metadata values that are not strings, or a metadata section that is not an object.
      const h = clone(p.header);
      const meta = h.__metadata__ as Record<string, Json> | undefined;
      const choice = rng.pick(['number-value', 'object-value', 'array', 'null', 'string', 'remove'] as const);
      const key = meta ? rng.pick(Object.keys(meta)) : 'format';
      if (choice === 'number-value' && meta) meta[key] = 5;
      else if (choice === 'object-value' && meta) meta[key] = JSON.parse((meta[key] as string).startsWith('{') ? (meta[key] as string) : '{}') as Json;
      else if (choice === 'array') h.__metadata__ = [];
      else if (choice === 'null') h.__metadata__ = null;
      else if (choice === 'string') h.__metadata__ = 'meta';
      else delete h.__metadata__;
      return { header: h, kind: `st-metadata-${choice}`, desc: `__metadata__ ${choice}${choice.endsWith('value') ? ` (key '${key}')` : ''}` };
    },
    2,
  ],
  [
    (p, rng) => {
      // A hostile value anywhere in the header (numbers in shapes/offsets, names, dtypes…).
      const h = clone(p.header) as Json;
      const all = paths(h).filter((x) => x.path.length > 1 && x.path[0] !== '__metadata__');
      const target = rng.pick(all);
      const raw = new RawJson();
      const value = rng.pick(HOSTILE_VALUES);
      setAt(h, target.path, raw.raw(value));
      return { text: raw.stringify(h), kind: 'st-hostile-value', desc: `${target.path.join('.')} = ${value}` };
    },
    3,
  ],
  [
    (p, rng) => {
      const h = clone(p.header);
      const choice = rng.pick(['deep-entry', 'giant-name', 'giant-metadata'] as const);
      const raw = new RawJson();
      if (choice === 'deep-entry') h[rng.pick(tensorNames(h))] = raw.raw(deepNest(rng.pick([1000, 100_000]), 'object'));
      else if (choice === 'giant-name') {
        const name = rng.pick(tensorNames(h));
        const e = h[name];
        delete h[name];
        h['n'.repeat(rng.pick([100_000, 5_000_000]))] = e;
      } else (h.__metadata__ as Record<string, Json>).junk = 'x'.repeat(rng.pick([100_000, 20_000_000]));
      return { text: raw.stringify(h), kind: `st-${choice}`, desc: choice };
    },
    1,
  ],
];

/** Checkpoint metadata (meta, optimizer, aliases, dataSha256, format) edits, written back as strings. */
const checkpointMetaEdits: readonly (readonly [(meta: Record<string, Json>, names: string[], shapes: Record<string, number[]>, rng: Rng) => string, number])[] = [
  [
    (md, _n, _s, rng) => {
      const meta = JSON.parse(md.meta as string) as Record<string, Json>;
      const field = rng.pick(['step', 'tokensSeen', 'elapsedSeconds', 'bestValLoss', 'plannedSteps']);
      const value = rng.pick([-5, -1, 0, 1e9, 2.5, 1e308, '"5"', '"NaN"', 'null', '1e400', 'true']);
      const raw = new RawJson();
      meta[field] = raw.raw(String(value));
      md.meta = raw.stringify(meta);
      return `meta.${field} = ${value}`;
    },
    3,
  ],
  [
    (md, _n, _s, rng) => {
      const meta = JSON.parse(md.meta as string) as Record<string, Json>;
      const model = (meta.config as Record<string, Json>).model as Record<string, Json>;
      const field = rng.pick(['nLayers', 'dModel', 'nHeads', 'nKvHeads', 'dFF', 'vocabSize', 'maxSeqLen', 'tieWeights', 'norm', 'mlp', 'pos', 'bias', 'dropout', 'normEps', 'mup', 'initStd']);
      const values: Record<string, Json[]> = {
        nLayers: [1e9, 2, 0, -1, 1.5, '1'],
        dModel: [3000, 17, 0, 32, -16],
        nHeads: [3, 0, 4, 1e9],
        nKvHeads: [1, 3, 0],
        dFF: [64, 0, 1e9],
        vocabSize: [1e9, 22, 24, 0],
        maxSeqLen: [1e9, 8, 32, 0],
        tieWeights: [false, 'yes'],
        norm: ['rms', 'nope'],
        mlp: ['swiglu', 'x'],
        pos: ['rope', 'none', 'x'],
        bias: [false],
        dropout: [2, -1, 0.5],
        normEps: [-1, 0, 1e9],
        mup: [{ baseWidth: 8 }, 'x'],
        initStd: [-1, 1e9],
      };
      const v = rng.pick(values[field]);
      model[field] = v;
      md.meta = JSON.stringify(meta);
      return `meta.config.model.${field} = ${short(v)}`;
    },
    4,
  ],
  [
    (md, _n, _s, rng) => {
      const meta = JSON.parse(md.meta as string) as Record<string, Json>;
      const train = (meta.config as Record<string, Json>).train as Record<string, Json>;
      const field = rng.pick(['lr', 'minLr', 'maxSteps', 'batchSize', 'blockSize', 'seed', 'weightDecay', 'tokenizer', 'warmupSteps']);
      const v = rng.pick([-1, 0, 1e9, 0.1, 'x', null] as Json[]);
      train[field] = v;
      md.meta = JSON.stringify(meta);
      return `meta.config.train.${field} = ${short(v)}`;
    },
    2,
  ],
  [
    (md, _n, _s, rng) => {
      const opt = JSON.parse(md.optimizer as string) as { state: Record<string, Record<string, Json>>; paramGroups: Record<string, Json>[] };
      const choice = rng.pick(['lr', 'betas', 'weightDecay', 'eps', 'state-step', 'drop-groups', 'drop-state'] as const);
      let desc: string;
      if (choice === 'drop-groups') {
        delete (opt as Partial<typeof opt>).paramGroups;
        desc = 'optimizer.paramGroups removed';
      } else if (choice === 'drop-state') {
        delete (opt as Partial<typeof opt>).state;
        desc = 'optimizer.state removed';
      } else if (choice === 'state-step') {
        const keys = Object.keys(opt.state);
        const k = keys.length > 0 ? rng.pick(keys) : '0';
        opt.state[k] ??= {};
        const v = rng.pick([-5, 1e9, 'x', 0.5] as Json[]);
        opt.state[k].step = v;
        desc = `optimizer.state.${k}.step = ${short(v)}`;
      } else {
        const g = rng.int(opt.paramGroups.length);
        const v = rng.pick([-1, 0, 1e9, 0.002, 'x', null, [0.9]] as Json[]);
        opt.paramGroups[g][choice] = v;
        desc = `optimizer.paramGroups[${g}].${choice} = ${short(v)}`;
      }
      md.optimizer = JSON.stringify(opt);
      return desc;
    },
    3,
  ],
  [
    (md, names, shapes, rng) => {
      const aliases = JSON.parse((md.aliases as string | undefined) ?? '{}') as Record<string, string>;
      const model = names.filter((n) => !n.startsWith('optimizer.'));
      const choice = rng.pick(['retarget-same-shape', 'retarget-other-shape', 'missing-target', 'self', 'shadow-real-tensor', 'invalid-json', 'array', 'non-string-target', 'to-optimizer'] as const);
      const alias = Object.keys(aliases)[0] ?? 'head.weight';
      const sameShape = (a: string) => model.filter((n) => n !== a && JSON.stringify(shapes[n]) === JSON.stringify(shapes[aliases[alias] ?? a]));
      let desc: string;
      switch (choice) {
        case 'retarget-same-shape': {
          const c = sameShape(alias);
          const t = c.length > 0 ? rng.pick(c) : rng.pick(model);
          aliases[alias] = t;
          desc = `aliases: '${alias}' → '${t}'`;
          break;
        }
        case 'retarget-other-shape': {
          const t = rng.pick(model);
          aliases[alias] = t;
          desc = `aliases: '${alias}' → '${t}' (shape ${JSON.stringify(shapes[t])})`;
          break;
        }
        case 'missing-target':
          aliases[alias] = 'no.such.tensor';
          desc = `aliases: '${alias}' → 'no.such.tensor'`;
          break;
        case 'self':
          aliases[alias] = alias;
          desc = `aliases: '${alias}' → itself`;
          break;
        case 'shadow-real-tensor': {
          // An alias named like a stored tensor of the same shape: it overrides that tensor.
          const a = rng.pick(model);
          const c = model.filter((n) => n !== a && JSON.stringify(shapes[n]) === JSON.stringify(shapes[a]));
          const t = c.length > 0 ? rng.pick(c) : rng.pick(model);
          aliases[a] = t;
          desc = `aliases: stored tensor '${a}' → '${t}'`;
          break;
        }
        case 'to-optimizer': {
          const opt = names.filter((n) => n.startsWith('optimizer.'));
          const t = opt.length > 0 ? rng.pick(opt) : 'optimizer.0.m';
          aliases[alias] = t;
          desc = `aliases: '${alias}' → '${t}'`;
          break;
        }
        case 'invalid-json':
          md.aliases = '{"head.weight": ';
          return 'aliases = invalid JSON';
        case 'array':
          md.aliases = '["tokEmb.weight"]';
          return 'aliases = a JSON array';
        case 'non-string-target':
          md.aliases = JSON.stringify({ [alias]: 5 });
          return `aliases: '${alias}' → 5`;
      }
      md.aliases = JSON.stringify(aliases);
      return desc;
    },
    4,
  ],
  [
    (md, _n, _s, rng) => {
      const choice = rng.pick(['flip-hex', 'remove', 'uppercase', 'empty'] as const);
      // fileSha256 (format /2, the whole file) or dataSha256 (format /1, the tensors).
      const key = 'fileSha256' in md ? 'fileSha256' : 'dataSha256';
      const h = String(md[key] ?? '');
      if (choice === 'flip-hex') md[key] = (h[0] === '0' ? '1' : '0') + h.slice(1);
      else if (choice === 'remove') delete md[key];
      else if (choice === 'uppercase') md[key] = h.toUpperCase();
      else md[key] = '';
      return `${key} ${choice}`;
    },
    1,
  ],
  [
    (md, _n, _s, rng) => {
      const choice = rng.pick(['format-v2', 'format-removed', 'meta-invalid-json', 'meta-array', 'meta-null', 'meta-removed', 'optimizer-invalid-json', 'optimizer-removed', 'rng-edit', 'meta-deep', 'config-removed'] as const);
      switch (choice) {
        case 'format-v2': md.format = 'tensorlm-checkpoint/2'; break;
        case 'format-removed': delete md.format; break;
        case 'meta-invalid-json': md.meta = (md.meta as string).slice(0, 20); break;
        case 'meta-array': md.meta = '[]'; break;
        case 'meta-null': md.meta = 'null'; break;
        case 'meta-removed': delete md.meta; break;
        case 'optimizer-invalid-json': md.optimizer = '{'; break;
        case 'optimizer-removed': delete md.optimizer; break;
        case 'rng-edit': {
          const meta = JSON.parse(md.meta as string) as Record<string, Json>;
          const gens = meta.rng as Record<string, Json>;
          const k = Object.keys(gens)[0];
          gens[k] = rng.pick([null, 'x', { s: [1, 2] }, [] as Json]);
          md.meta = JSON.stringify(meta);
          return `meta.rng.${k} edited`;
        }
        case 'meta-deep': md.meta = deepNest(100_000, 'array'); break;
        case 'config-removed': {
          const meta = JSON.parse(md.meta as string) as Record<string, Json>;
          delete meta.config;
          md.meta = JSON.stringify(meta);
          break;
        }
      }
      return choice;
    },
    3,
  ],
];

/**
 * The seed as a format-/1 checkpoint ('tensorlm-checkpoint/1', which the loader still reads):
 * no whole-file checksum and no tokenizer record, only dataSha256 over the tensors (sorted
 * names and bytes). Its metadata is not covered by any checksum, so edits to it reach the
 * loader's validation instead of stopping at the checksum.
 */
export function toFormatV1(seed: Uint8Array): Uint8Array {
  const p = splitSafetensors(seed);
  const h = clone(p.header);
  const md = (h.__metadata__ ?? {}) as Record<string, Json>;
  if (md.format !== 'tensorlm-checkpoint/2') return seed;
  const hash = createHash('sha256');
  for (const name of tensorNames(h).sort()) {
    const [b, e] = entry(h, name).data_offsets;
    hash.update(name);
    hash.update(p.data.subarray(b, e));
  }
  const v1: Record<string, Json> = { format: 'tensorlm-checkpoint/1', meta: md.meta, optimizer: md.optimizer, aliases: md.aliases ?? '{}', dataSha256: hash.digest('hex') };
  h.__metadata__ = v1;
  return joinSafetensors(JSON.stringify(h), p.data);
}

function checkpointMutator(): Mutator {
  const headerRegion = (seed: Uint8Array): [number, number] => {
    const n = Number(new DataView(seed.buffer, seed.byteOffset, 8).getBigUint64(0, true));
    return [0, Math.min(seed.length, 8 + n)];
  };
  const bytesAnywhere = byteMutators();
  const bytesInHeader = byteMutators(headerRegion);
  const mutateSeed = (seed: Uint8Array, rng: Rng): Mutation => {
    const family = rng.weighted([
      ['bytes', 2],
      ['bytes-header', 2],
      ['header', 5],
      ['metadata', 5],
    ] as const);
    if (family === 'bytes') return rng.pick(bytesAnywhere)(seed, rng);
    if (family === 'bytes-header') return rng.pick(bytesInHeader)(seed, rng);
    const p = splitSafetensors(seed);
    if (family === 'header') {
      const r = rng.weighted(safetensorsEdits)(p, rng);
      const text = r.text ?? JSON.stringify(r.header);
      return m(joinSafetensors(text, r.data ?? p.data, { pad: r.pad, length: r.length }), r.kind, r.desc);
    }
    const h = clone(p.header);
    const md = h.__metadata__ as Record<string, Json>;
    const names = tensorNames(h);
    const shapes = Object.fromEntries(names.map((n) => [n, entry(h, n).shape]));
    const index = rng.int(checkpointMetaEdits.length);
    const desc = checkpointMetaEdits[index][0](md, names, shapes, rng);
    const kind = ['ckpt-meta-scalars', 'ckpt-model-config', 'ckpt-train-config', 'ckpt-optimizer', 'ckpt-aliases', 'ckpt-checksum', 'ckpt-metadata-structure'][index];
    return m(joinSafetensors(JSON.stringify(h), p.data), kind, desc);
  };
  return (seed, rng) => {
    // Half the cases start from the seed rewritten as format /1 (metadata without a checksum).
    if (!rng.chance(0.5)) return mutateSeed(seed, rng);
    const v1 = toFormatV1(seed);
    if (rng.chance(0.03)) return m(v1, 'equiv-format-v1', 'rewritten as format /1 (no other change)');
    const r = mutateSeed(v1, rng);
    return { ...r, kind: `v1:${r.kind}`, desc: `[format /1] ${r.desc}` };
  };
}

// ---- tokenizers ---------------------------------------------------------------------------------------

type DocEdit = (doc: Json, rng: Rng) => { text: string; kind: string; desc: string };

function docEdit(kind: string, f: (doc: Record<string, Json>, rng: Rng) => string | { text: string; desc: string }): DocEdit {
  return (doc, rng) => {
    const d = clone(doc) as Record<string, Json>;
    const r = f(d, rng);
    return typeof r === 'string' ? { text: JSON.stringify(d), kind, desc: r } : { text: r.text, kind, desc: r.desc };
  };
}

const charTokenizerEdits: readonly (readonly [DocEdit, number])[] = [
  [
    docEdit('char-swap', (d, rng) => {
      const chars = d.chars as string[];
      const i = rng.int(chars.length);
      let j = rng.int(chars.length);
      if (j === i) j = (i + 1) % chars.length;
      [chars[i], chars[j]] = [chars[j], chars[i]];
      return `chars[${i}] ⇄ chars[${j}] (${JSON.stringify(chars[j])}, ${JSON.stringify(chars[i])})`;
    }),
    3,
  ],
  [
    docEdit('char-entry', (d, rng) => {
      const chars = d.chars as Json[];
      const i = rng.int(chars.length);
      const v = rng.pick(['', 'ab', '\ud800', '\udc00', '😀', chars[(i + 1) % chars.length], 5, null, ['a'], '\u0000', 'é', 'e\u0301'] as Json[]);
      chars[i] = v;
      return `chars[${i}] = ${short(v)}`;
    }),
    3,
  ],
  [
    docEdit('char-add-remove', (d, rng) => {
      const chars = d.chars as string[];
      if (rng.chance(0.5)) {
        const i = rng.int(chars.length);
        const [c] = chars.splice(i, 1);
        return `chars[${i}] (${JSON.stringify(c)}) removed`;
      }
      const c = rng.pick(['Z', '~', '€', '\t', '😀']);
      chars.splice(rng.int(chars.length + 1), 0, c);
      return `char ${JSON.stringify(c)} inserted`;
    }),
    2,
  ],
  [
    docEdit('char-unk', (d, rng) => {
      const choice = rng.pick(['unk-remove', 'unk-number', 'unk-empty', 'unk-char', 'unkId-huge', 'unkId-negative', 'unkId-fraction', 'unkId-collide', 'unkId-gap', 'unkId-without-unk'] as const);
      const chars = d.chars as string[];
      switch (choice) {
        case 'unk-remove': delete d.unk; break;
        case 'unk-number': d.unk = 5; break;
        case 'unk-empty': d.unk = ''; break;
        case 'unk-char': d.unk = chars[0]; break;
        case 'unkId-huge': d.unkId = 2 ** 21 - 1; break;
        case 'unkId-negative': d.unkId = -1; break;
        case 'unkId-fraction': d.unkId = 1.5; break;
        case 'unkId-collide': d.unkId = 0; break;
        case 'unkId-gap': d.unkId = chars.length + 5; break;
        case 'unkId-without-unk': delete d.unk; d.unkId = chars.length; break;
      }
      return choice;
    }),
    2,
  ],
  [
    docEdit('char-special', (d, rng) => {
      const st = (d.specialTokens ?? {}) as Record<string, Json>;
      const choice = rng.pick(['id-huge', 'id-max', 'id-negative', 'id-collide-char', 'id-collide-unk', 'empty-text', 'id-string', 'not-object', 'add', 'gap'] as const);
      const chars = d.chars as string[];
      const key = Object.keys(st)[0] ?? '<|x|>';
      switch (choice) {
        case 'id-huge': st[key] = 1e9; break;
        case 'id-max': st[key] = 2 ** 21 - 1; break;
        case 'id-negative': st[key] = -1; break;
        case 'id-collide-char': st[key] = 0; break;
        case 'id-collide-unk': st[key] = chars.length; break;
        case 'empty-text': st[''] = chars.length + 2; break;
        case 'id-string': st[key] = '3'; break;
        case 'not-object': d.specialTokens = ['<|x|>']; return choice;
        case 'add': st['<|new|>'] = chars.length + 2; break;
        case 'gap': st[key] = chars.length + 10; break;
      }
      d.specialTokens = st;
      return `specialTokens ${choice} (${JSON.stringify(key)})`;
    }),
    2,
  ],
  [
    docEdit('char-header', (d, rng) => {
      const choice = rng.pick(['version-2', 'version-string', 'version-missing', 'type-bpe', 'type-missing', 'chars-string', 'chars-missing', 'chars-empty'] as const);
      switch (choice) {
        case 'version-2': d.version = 2; break;
        case 'version-string': d.version = '1'; break;
        case 'version-missing': delete d.version; break;
        case 'type-bpe': d.type = 'bpe'; break;
        case 'type-missing': delete d.type; break;
        case 'chars-string': d.chars = (d.chars as string[]).join(''); break;
        case 'chars-missing': delete d.chars; break;
        case 'chars-empty': d.chars = []; break;
      }
      return choice;
    }),
    2,
  ],
  [
    docEdit('char-giant', (d, rng) => {
      const n = rng.pick([10_000, 500_000]);
      const chars: string[] = [];
      for (let cp = 0x4e00; chars.length < n && cp < 0x10ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) chars.push(String.fromCodePoint(cp));
      d.chars = [...(d.chars as string[]), ...chars];
      return `${n} characters added`;
    }),
    1,
  ],
];

const GPT2_SPACE = '\u0120';

const bpeTokenizerEdits: readonly (readonly [DocEdit, number])[] = [
  [
    docEdit('bpe-vocab-swap', (d, rng) => {
      const vocab = d.vocab as Record<string, number>;
      const keys = Object.keys(vocab);
      const learned = keys.filter((k) => vocab[k] >= 256);
      const a = rng.chance(0.5) && learned.length > 0 ? rng.pick(learned) : rng.pick(keys);
      const b = rng.pick(keys.filter((k) => k !== a));
      [vocab[a], vocab[b]] = [vocab[b], vocab[a]];
      return `ids of ${JSON.stringify(a)} and ${JSON.stringify(b)} swapped`;
    }),
    3,
  ],
  [
    docEdit('bpe-vocab-id', (d, rng) => {
      const vocab = d.vocab as Record<string, Json>;
      const keys = Object.keys(vocab);
      const k = rng.pick(keys);
      const v = rng.pick([-1, 1.5, 1e9, 2 ** 31, 300_000, '5', null, vocab[rng.pick(keys)], keys.length + 3, keys.length + 100_000] as Json[]);
      vocab[k] = v;
      return `vocab[${JSON.stringify(k)}] = ${short(v)}`;
    }),
    3,
  ],
  [
    docEdit('bpe-vocab-entry', (d, rng) => {
      const vocab = d.vocab as Record<string, number>;
      const keys = Object.keys(vocab);
      const choice = rng.pick(['remove-byte', 'remove-learned', 'add-unused', 'add-invalid-spelling', 'add-empty', 'rename'] as const);
      const max = Math.max(...Object.values(vocab));
      switch (choice) {
        case 'remove-byte': {
          const k = rng.pick(keys.filter((x) => vocab[x] < 256));
          delete vocab[k];
          return `byte token ${JSON.stringify(k)} removed`;
        }
        case 'remove-learned': {
          const learned = keys.filter((x) => vocab[x] >= 256);
          const k = learned.length > 0 ? rng.pick(learned) : keys[0];
          delete vocab[k];
          return `learned token ${JSON.stringify(k)} removed`;
        }
        case 'add-unused': {
          const k = 'zq' + GPT2_SPACE + 'x';
          vocab[k] = max + 1;
          return `unused token ${JSON.stringify(k)} added at id ${max + 1}`;
        }
        case 'add-invalid-spelling': {
          vocab['a b'] = max + 1;
          return `token "a b" (space is not GPT-2 spelling) added`;
        }
        case 'add-empty': {
          vocab[''] = max + 1;
          return 'empty token added';
        }
        case 'rename': {
          const learned = keys.filter((x) => vocab[x] >= 256);
          const k = learned.length > 0 ? rng.pick(learned) : keys[0];
          const v = vocab[k];
          delete vocab[k];
          vocab[k + 'e'] = v;
          return `token ${JSON.stringify(k)} renamed ${JSON.stringify(k + 'e')}`;
        }
      }
    }),
    3,
  ],
  [
    docEdit('bpe-merges', (d, rng) => {
      const merges = d.merges as Json[];
      const choice = rng.pick(['swap', 'remove', 'duplicate', 'no-space', 'two-spaces', 'three-parts', 'empty', 'unknown-token', 'non-string', 'reverse-pair', 'special-token', 'not-array', 'move-last-first'] as const);
      const i = rng.int(merges.length);
      const j = rng.int(merges.length);
      switch (choice) {
        case 'swap': [merges[i], merges[j]] = [merges[j], merges[i]]; return `merges ${i} ⇄ ${j}`;
        case 'remove': merges.splice(i, 1); return `merge ${i} removed`;
        case 'duplicate': merges.splice(j, 0, merges[i]); return `merge ${i} repeated at ${j}`;
        case 'no-space': merges[i] = (merges[i] as string).replace(' ', ''); break;
        case 'two-spaces': merges[i] = (merges[i] as string).replace(' ', '  '); break;
        case 'three-parts': merges[i] = `${merges[i]} a`; break;
        case 'empty': merges[i] = ''; break;
        case 'unknown-token': merges[i] = 'zzzq y'; break;
        case 'non-string': merges[i] = rng.pick([5, null, ['a', 'b']] as Json[]); break;
        case 'reverse-pair': merges[i] = (merges[i] as string).split(' ').reverse().join(' '); break;
        case 'special-token': merges[i] = '<|endoftext|> a'; break;
        case 'not-array': d.merges = (merges as string[]).join('\n'); return 'merges as one string';
        case 'move-last-first': merges.unshift(merges.pop() as Json); return 'last merge moved first';
      }
      return `merge ${i} ${choice} (${short(merges[i])})`;
    }),
    4,
  ],
  [
    docEdit('bpe-pattern', (d, rng) => {
      const choices: [string, string][] = [
        ['empty', ''],
        ['empty-group', '(?:)'],
        ['backtracking', '(a+)+$'],
        ['backtracking-letters', '(\\p{L}+)+\\d'],
        ['nested-quantifier', '(?:(?:a|aa)+)+b'],
        ['unclosed', '('],
        ['bad-property', '\\p{Nope}+'],
        ['never-matches', 'x^'],
        ['single-chars', '[\\s\\S]'],
        ['dot', '.'],
        ['lookbehind', '(?<=a)b'],
        ['letters-only', '\\p{L}+'],
        ['huge-alternation', Array.from({ length: 5000 }, (_, k) => `w${k}`).join('|')],
        ['backreference', '(a)\\1'],
        ['unicode-sets', '[\\p{L}--a]'],
      ];
      const [name, pattern] = rng.pick(choices);
      if (rng.chance(0.1)) {
        d.pattern = rng.pick([5, null, ['a']] as Json[]);
        return `pattern = ${short(d.pattern)}`;
      }
      d.pattern = pattern;
      return `pattern ${name} /${short(pattern, 40)}/`;
    }),
    4,
  ],
  [
    docEdit('bpe-special', (d, rng) => {
      const st = (d.specialTokens ?? {}) as Record<string, Json>;
      const key = Object.keys(st)[0] ?? '<|endoftext|>';
      const vocab = d.vocab as Record<string, number>;
      const max = Math.max(...Object.values(vocab));
      const choice = rng.pick(['id-collide', 'id-huge', 'id-max', 'id-negative', 'empty-text', 'spelled-like-token', 'not-object', 'removed', 'gap', 'two-same-id'] as const);
      switch (choice) {
        case 'id-collide': st[key] = 0; break;
        case 'id-huge': st[key] = 1e9; break;
        case 'id-max': st[key] = (1 << 24) - 1; break;
        case 'id-negative': st[key] = -1; break;
        case 'empty-text': st[''] = max + 5; break;
        case 'spelled-like-token': st['a'] = max + 5; break;
        case 'not-object': d.specialTokens = [key]; return choice;
        case 'removed': delete d.specialTokens; return choice;
        case 'gap': st[key] = max + 1000; break;
        case 'two-same-id': st['<|other|>'] = st[key]; break;
      }
      d.specialTokens = st;
      return `specialTokens ${choice}`;
    }),
    2,
  ],
  [
    docEdit('bpe-header', (d, rng) => {
      const choice = rng.pick(['version-2', 'type-char', 'vocab-array', 'vocab-missing', 'merges-missing', 'pattern-missing'] as const);
      switch (choice) {
        case 'version-2': d.version = 2; break;
        case 'type-char': d.type = 'char'; break;
        case 'vocab-array': d.vocab = Object.keys(d.vocab as object); break;
        case 'vocab-missing': delete d.vocab; break;
        case 'merges-missing': delete d.merges; break;
        case 'pattern-missing': delete d.pattern; break;
      }
      return choice;
    }),
    1,
  ],
  [
    docEdit('bpe-giant', (d, rng) => {
      const vocab = d.vocab as Record<string, number>;
      const n = rng.pick([20_000, 300_000]);
      let id = Math.max(...Object.values(vocab), ...Object.values((d.specialTokens ?? {}) as Record<string, number>)) + 1;
      for (let k = 0; k < n; k++) vocab[`q${k.toString(36)}`] = id++;
      return `${n} unused tokens added`;
    }),
    1,
  ],
];

// ---- run config.json ----------------------------------------------------------------------------

const configEdits: readonly (readonly [DocEdit, number])[] = [
  [
    docEdit('config-model-field', (d, rng) => {
      const model = d.model as Record<string, Json>;
      const field = rng.pick(Object.keys(model));
      const v = rng.pick([1e9, 3000, 0, -1, 1.5, 'x', null, true] as Json[]);
      model[field] = v;
      return `model.${field} = ${short(v)}`;
    }),
    4,
  ],
  [
    docEdit('config-train-field', (d, rng) => {
      const train = d.train as Record<string, Json>;
      const field = rng.pick(Object.keys(train));
      const v = rng.pick([1e9, 0, -5, 0.5, 'x', null, '../../etc', {}] as Json[]);
      train[field] = v;
      return `train.${field} = ${short(v)}`;
    }),
    3,
  ],
  [
    docEdit('config-structure', (d, rng) => {
      const choice = rng.pick(['model-missing', 'train-missing', 'lora-added', 'lora-invalid', 'stage-added', 'model-array'] as const);
      switch (choice) {
        case 'model-missing': delete d.model; break;
        case 'train-missing': delete d.train; break;
        case 'lora-added': d.lora = { rank: 4, alpha: 8, targets: ['wq'] }; break;
        case 'lora-invalid': d.lora = { rank: -1 }; break;
        case 'stage-added': d.stage = 'sft'; break;
        case 'model-array': d.model = []; break;
      }
      return choice;
    }),
    2,
  ],
];

// ---- a training config file (`tensorlm train --config`) ------------------------------------------

const configFileEdits: readonly (readonly [DocEdit, number])[] = [
  [
    docEdit('cfgfile-field', (d, rng) => {
      const field = rng.pick(['lr', 'minLr', 'maxSteps', 'batchSize', 'blockSize', 'seed', 'weightDecay', 'warmupSteps', 'dropout', 'beta1', 'gradClip', 'trainFraction', 'name', 'tokenizer', 'lrSchedule', 'replicas']);
      const v = rng.pick([1e9, 0, -5, 0.5, 1, 'x', '', null, true, '3', '../../etc', {}, [1], 1e308] as Json[]);
      d[field] = v;
      return `${field} = ${short(v)}`;
    }),
    4,
  ],
  [
    docEdit('cfgfile-maxtime', (d, rng) => {
      const v = rng.pick(['10m', '1h', '90s', '90', 'none', 'off', 'x', '-5m', '0s', '1e9', '10 m', 5, -1, 0, null, true, [] as Json, '99999999999999999h'] as Json[]);
      d.maxTime = v;
      return `maxTime = ${short(v)}`;
    }),
    2,
  ],
  [
    docEdit('cfgfile-model', (d, rng) => {
      const model = d.model as Record<string, Json>;
      const field = rng.pick(['dModel', 'nLayers', 'nHeads', 'dFF', 'maxSeqLen', 'dropout', 'norm', 'pos', 'vocabSize', 'nope']);
      const v = rng.pick([1e9, 0, -1, 1.5, 'x', null, 32, 3] as Json[]);
      model[field] = v;
      return `model.${field} = ${short(v)}`;
    }),
    2,
  ],
  [
    docEdit('cfgfile-structure', (d, rng) => {
      const choice = rng.pick(['run-config', 'model-array', 'model-null', 'unknown-key', 'nested-train-null'] as const);
      switch (choice) {
        case 'run-config': return { text: JSON.stringify({ train: d, model: { vocabSize: 65 } }), desc: 'wrapped as a run config.json ({ train, model })' };
        case 'model-array': d.model = []; break;
        case 'model-null': d.model = null; break;
        case 'unknown-key': d.learningRate = 0.1; break;
        case 'nested-train-null': return { text: JSON.stringify({ train: null }), desc: choice };
      }
      return choice;
    }),
    1,
  ],
];

// ---- scaling CSV -------------------------------------------------------------------------------------

function csvRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split(','));
}

function csvText(rows: string[][], eol = '\n'): string {
  return rows.map((r) => r.join(',')).join(eol) + eol;
}

type CsvEdit = (rows: string[][], rng: Rng) => { text: string; desc: string; kind: string };

function csvEdit(kind: string, f: (rows: string[][], rng: Rng) => string | { text: string; desc: string }): CsvEdit {
  return (rows, rng) => {
    const r = f(rows.map((x) => x.slice()), rng);
    return typeof r === 'string' ? { text: '', desc: r, kind } : { ...r, kind };
  };
}

const csvEdits: readonly (readonly [CsvEdit, number])[] = [
  [
    csvEdit('csv-cell', (rows, rng) => {
      const r = rng.range(1, rows.length - 1);
      const c = rng.int(rows[0].length);
      const v = rng.pick(['Infinity', 'NaN', 'inf', '-1', '0', '1e400', '1e-400', '', '0x10', '"1,000"', ' 5 ', '+5', '.5', '5.', '1e5.5', '١٢', '1_000', 'null', '-0', '1e308', '"2"', '\t3\t']);
      const old = rows[r][c];
      rows[r][c] = v;
      return { text: csvText(rows), desc: `row ${r} ${rows[0][c]}: ${old} → ${JSON.stringify(v)}` };
    }),
    5,
  ],
  [
    csvEdit('csv-identical-rows', (rows, rng) => {
      const r = rng.range(1, rows.length - 1);
      const n = rng.pick([1, 2, 5]);
      for (let k = 0; k < n; k++) rows.splice(r + 1, 0, rows[r].slice());
      return { text: csvText(rows), desc: `row ${r} repeated ${n} time(s)` };
    }),
    3,
  ],
  [
    csvEdit('csv-columns', (rows, rng) => {
      const choice = rng.pick(['drop-column', 'drop-header-cell', 'drop-row-cell', 'extra-column', 'extra-row-cell', 'swap-header', 'reorder', 'rename-alias', 'uppercase', 'duplicate-header', 'empty-header-cell', 'only-N-loss', 'drop-D', 'drop-C', 'drop-loss'] as const);
      const c = rng.int(rows[0].length);
      const idx = (name: string) => rows[0].indexOf(name);
      switch (choice) {
        case 'drop-column': rows.forEach((r) => r.splice(c, 1)); break;
        case 'drop-header-cell': rows[0].splice(c, 1); break;
        case 'drop-row-cell': rows[rng.range(1, rows.length - 1)].splice(c, 1); break;
        case 'extra-column': rows.forEach((r, i) => r.push(i === 0 ? 'seed' : String(i))); break;
        case 'extra-row-cell': rows[rng.range(1, rows.length - 1)].push('7'); break;
        case 'swap-header': {
          const d = rng.int(rows[0].length);
          [rows[0][c], rows[0][d]] = [rows[0][d], rows[0][c]];
          break;
        }
        case 'reorder': {
          const perm = rows[0].map((_, i) => i).reverse();
          rows.forEach((r, i) => (rows[i] = perm.map((p) => r[p])));
          break;
        }
        case 'rename-alias': rows[0] = rows[0].map((h) => ({ N: 'params', D: 'tokens', C: 'flops', loss: 'val_loss' })[h] ?? h); break;
        case 'uppercase': rows[0] = rows[0].map((h) => h.toUpperCase()); break;
        case 'duplicate-header': rows[0][c] = rows[0][(c + 1) % rows[0].length]; break;
        case 'empty-header-cell': rows[0][c] = ''; break;
        case 'only-N-loss': rows.forEach((r, i) => (rows[i] = [r[idx('N')], r[idx('loss')]])); break;
        case 'drop-D':
        case 'drop-C':
        case 'drop-loss': {
          const k = idx(choice.slice(5));
          rows.forEach((r) => r.splice(k, 1));
          break;
        }
      }
      return { text: csvText(rows), desc: choice + (choice.includes('cell') || choice.includes('column') ? ` (column ${c})` : '') };
    }),
    4,
  ],
  [
    csvEdit('csv-lines', (rows, rng) => {
      const choice = rng.pick(['header-only', 'no-header', 'blank-lines', 'whitespace-line', 'comment-line', 'semicolons', 'tabs', 'unterminated-quote', 'nul-byte', 'lone-cr', 'quoted-newline', 'trailing-comma'] as const);
      switch (choice) {
        case 'header-only': return { text: csvText([rows[0]]), desc: choice };
        case 'no-header': return { text: csvText(rows.slice(1)), desc: choice };
        case 'blank-lines': return { text: csvText(rows).replace(/\n/g, '\n\n'), desc: choice };
        case 'whitespace-line': return { text: csvText(rows).replace('\n', '\n   \n'), desc: choice };
        case 'comment-line': return { text: '# sweep of 2024\n' + csvText(rows), desc: choice };
        case 'semicolons': return { text: rows.map((r) => r.join(';')).join('\n') + '\n', desc: choice };
        case 'tabs': return { text: rows.map((r) => r.join('\t')).join('\n') + '\n', desc: choice };
        case 'unterminated-quote': return { text: csvText(rows).replace(/\n([^\n]*)\n$/, '\n"$1\n'), desc: choice };
        case 'nul-byte': return { text: csvText(rows).replace('loss', 'lo\u0000ss'), desc: choice };
        case 'lone-cr': return { text: csvText(rows, '\r'), desc: choice };
        case 'quoted-newline': return { text: csvText(rows).replace(/\n([^\n,]*),/, '\n"$1\n",'), desc: choice };
        case 'trailing-comma': return { text: rows.map((r) => r.join(',') + ',').join('\n') + '\n', desc: choice };
      }
    }),
    3,
  ],
  [
    csvEdit('csv-huge', (rows, rng) => {
      const choice = rng.pick(['many-rows', 'giant-cell', 'many-columns', 'long-line'] as const);
      if (choice === 'many-rows') {
        const n = rng.pick([10_000, 200_000]);
        const out = [rows[0]];
        for (let k = 0; k < n; k++) {
          const N = 1e6 + k;
          const D = 2e7 + 3 * k;
          out.push([String(N), String(N + 1000), String(D), String(6 * N * D), (3 + (k % 97) / 100).toFixed(4)]);
        }
        return { text: csvText(out), desc: `${n} distinct rows` };
      }
      if (choice === 'giant-cell') {
        rows[1][0] = '1'.repeat(rng.pick([1000, 5_000_000]));
        return { text: csvText(rows), desc: `giant number cell (${rows[1][0].length} digits)` };
      }
      if (choice === 'many-columns') {
        rows.forEach((r, i) => r.push(...Array.from({ length: 20_000 }, (_, k) => (i === 0 ? `x${k}` : '1'))));
        return { text: csvText(rows), desc: '20,000 extra columns' };
      }
      return { text: csvText(rows) + ','.repeat(2_000_000) + '\n', desc: 'a line of 2,000,000 commas' };
    }),
    1,
  ],
];

const csvEquivalents: readonly (readonly [CsvEdit, number])[] = [
  [csvEdit('equiv-csv-crlf', (rows) => ({ text: csvText(rows, '\r\n'), desc: 'CRLF line endings' })), 1],
  [csvEdit('equiv-csv-bom', (rows) => ({ text: '\ufeff' + csvText(rows), desc: 'BOM' })), 1],
  [csvEdit('equiv-csv-quoted', (rows) => ({ text: rows.map((r) => r.map((c) => `"${c}"`).join(',')).join('\n') + '\n', desc: 'every cell quoted' })), 1],
  [csvEdit('equiv-csv-spaces', (rows) => ({ text: rows.map((r) => r.map((c) => ` ${c} `).join(',')).join('\n') + '\n', desc: 'cells padded with spaces' })), 1],
  [csvEdit('equiv-csv-no-final-newline', (rows) => ({ text: csvText(rows).slice(0, -1), desc: 'no final newline' })), 1],
  [csvEdit('equiv-csv-exponent', (rows) => ({ text: csvText(rows.map((r, i) => (i === 0 ? r : r.map((c) => Number(c).toExponential()))))
    , desc: 'numbers in exponent notation' })), 1],
];

function csvMutator(): Mutator {
  const bytes = byteMutators();
  return (seed, rng) => {
    const family = rng.weighted([
      ['bytes', 3],
      ['csv', 6],
      ['equiv', 1],
    ] as const);
    if (family === 'bytes') return rng.pick(bytes)(seed, rng);
    const rows = csvRows(dec.decode(seed));
    const r = rng.weighted(family === 'csv' ? csvEdits : csvEquivalents)(rows, rng);
    return m(r.text, r.kind, r.desc);
  };
}

// ---- entry -------------------------------------------------------------------------------------------

const MUTATORS: Record<Format, Mutator> = {
  checkpoint: checkpointMutator(),
  'tokenizer-char': jsonFormat(charTokenizerEdits),
  'tokenizer-bpe': jsonFormat(bpeTokenizerEdits),
  config: jsonFormat(configEdits),
  'config-file': jsonFormat(configFileEdits),
  csv: csvMutator(),
};

/** The mutation of case `index` (reproducible from the rng alone). */
export function mutate(format: Format, seed: Uint8Array, rng: Rng): Mutation {
  return MUTATORS[format](seed, rng);
}
