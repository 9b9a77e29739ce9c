/**
 * The safetensors reader against hostile and malformed files (issue #20, item 7): everything the
 * format forbids is rejected with one line naming the file, and oversized headers are refused
 * before they cost time or memory.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileErrorOf } from '../helpers/errors.js';
import '../../src/index.js';
import { MAX_HEADER_BYTES, MAX_TENSORS, parseSafetensors, serializeSafetensors } from '../../src/io/safetensors-bytes.js';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../../src/io/safetensors.js';
import { parseJsonText, scanJson } from '../../src/io/json.js';
import { Tensor } from '../../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'tensorlm-st-hostile-'));
let counter = 0;

/** A safetensors file from header text (or an object, JSON-encoded) and data bytes. */
function build(header: string | object, data: Uint8Array | number = 0): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}

function write(bytes: Uint8Array): string {
  const path = join(dir, `case-${counter++}.safetensors`);
  writeFileSync(path, bytes);
  return path;
}

/** The error of reading `bytes` as a file and as bytes: the same text, one line, naming the file. */
function errorOf(bytes: Uint8Array): string {
  const path = write(bytes);
  const fileMessage = fileErrorOf(() => loadSafetensors(path), path);
  let bytesMessage = '';
  try {
    parseSafetensors(bytes, { label: 'x.safetensors' });
  } catch (error) {
    bytesMessage = (error as Error).message;
  }
  expect(bytesMessage.replace('x.safetensors', path)).toBe(fileMessage);
  return fileMessage;
}

const f32 = (offsets: [number, number], shape = [(offsets[1] - offsets[0]) / 4]) => ({ dtype: 'F32', shape, data_offsets: offsets });

describe('safetensors: the format’s rules', () => {
  it('still reads valid files: empty tensors, scalars, space padding, metadata', () => {
    const header = { a: f32([0, 8]), empty: { dtype: 'F32', shape: [0, 5], data_offsets: [8, 8] }, s: { dtype: 'I32', shape: [], data_offsets: [8, 12] }, __metadata__: { k: 'v' } };
    const bytes = build(JSON.stringify(header) + '   ', 12);
    const loaded = loadSafetensors(write(bytes));
    expect(Object.keys(loaded.tensors)).toEqual(['a', 'empty', 's']);
    expect(loaded.tensors.empty.shape).toEqual([0, 5]);
    expect(loaded.metadata).toEqual({ k: 'v' });
    expect(parseSafetensors(bytes).tensors.s.shape).toEqual([]);
  });

  it('rejects overlapping data_offsets', () => {
    expect(errorOf(build({ a: f32([0, 8]), b: f32([4, 12]) }, 12))).toMatch(/tensor "b" \(bytes 4\.\.12\) overlaps tensor "a"/);
    // Two tensors over the same bytes (an alias smuggled in by the file).
    expect(errorOf(build({ a: f32([0, 8]), b: f32([0, 8]) }, 8))).toMatch(/overlaps/);
    // An empty tensor inside another's bytes.
    expect(errorOf(build({ a: f32([0, 8]), e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] } }, 8))).toMatch(/overlaps/);
  });

  it('rejects gaps between tensors and trailing bytes after the last', () => {
    expect(errorOf(build({ a: f32([0, 4]), b: f32([8, 12]) }, 12))).toMatch(/bytes 4\.\.8 of the data section belong to no tensor/);
    expect(errorOf(build({ a: f32([4, 8]) }, 8))).toMatch(/bytes 0\.\.4 of the data section belong to no tensor/);
    expect(errorOf(build({ a: f32([0, 4]) }, 20))).toMatch(/16 trailing bytes after the last tensor/);
    expect(errorOf(build({}, 4))).toMatch(/4 trailing bytes/);
  });

  it('rejects duplicate keys, at the top level and inside objects', () => {
    expect(errorOf(build('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8))).toMatch(/the key "a" appears twice/);
    // The same key spelled with an escape is still the same key.
    expect(errorOf(build('{"ab":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a\\u0062":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4))).toMatch(/the key "ab" appears twice/);
    expect(errorOf(build('{"__metadata__":{"format":"pt","format":"evil"}}'))).toMatch(/the key "format" appears twice/);
    expect(errorOf(build('{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', 4))).toMatch(/the key "dtype" appears twice/);
  });

  it('rejects a header that is not UTF-8, does not begin with {, or is not an object', () => {
    const bad = build('{"__metadata__":{"k":"\u00e9"}}');
    const at = Buffer.from(bad).indexOf(0xc3);
    bad[at] = 0xff;
    expect(errorOf(bad)).toMatch(/the header is not valid UTF-8/);
    expect(errorOf(build(' {}'))).toMatch(/the header must begin with '\{'/);
    expect(errorOf(build('[1, 2]'))).toMatch(/must begin with '\{'/);
    expect(errorOf(build('{"a": '))).toMatch(/header: invalid JSON \(/);
    expect(errorOf(build('{"a":1}'))).toMatch(/tensor "a" must be an object with dtype, shape and data_offsets, got 1/);
  });

  it('rejects metadata that is not a map of strings', () => {
    expect(errorOf(build({ __metadata__: { n: 3 } }))).toMatch(/__metadata__ value of "n" must be a string, got 3/);
    expect(errorOf(build({ __metadata__: { o: { deep: 'x' } } }))).toMatch(/__metadata__ value of "o" must be a string, got an object/);
    expect(errorOf(build({ __metadata__: ['x'] }))).toMatch(/__metadata__ must be an object of strings, got an array of 1 item/);
    expect(errorOf(build({ __metadata__: null }))).toMatch(/__metadata__ must be an object of strings, got null/);
  });

  it('rejects shape, dtype and byte-length mismatches, and offsets beyond the file', () => {
    expect(errorOf(build({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))).toMatch(/tensor "a": 8 bytes for F32 shape \[3\], expected 12/);
    expect(errorOf(build({ a: { dtype: 'F64', shape: [2], data_offsets: [0, 8] } }, 8))).toMatch(/8 bytes for F64 shape \[2\], expected 16/);
    expect(errorOf(build({ a: { dtype: 'toString', shape: [2], data_offsets: [0, 8] } }, 8))).toMatch(/unsupported dtype 'toString'/);
    expect(errorOf(build({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4))).toMatch(/invalid shape \(expected an array of non-negative integers, got \[-1\]\)/);
    expect(errorOf(build({ a: { dtype: 'F32', shape: [1e300, 0], data_offsets: [0, 0] } }))).toMatch(/invalid shape/);
    expect(errorOf(build({ a: { dtype: 'F32', shape: '2', data_offsets: [0, 8] } }, 8))).toMatch(/invalid shape \(expected an array of non-negative integers, got the string "2"\)/);
    expect(errorOf(build({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8))).toMatch(/invalid data_offsets/);
    expect(errorOf(build({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8, 9] } }, 8))).toMatch(/invalid data_offsets/);
    expect(errorOf(build({ a: f32([0, 8]) }, 4))).toMatch(/data_offsets \[0, 8\] beyond the data section of 4 bytes/);
    expect(errorOf(build({ a: { dtype: 'F32', shape: [2 ** 40], data_offsets: [0, 2 ** 42] } }, 4))).toMatch(/beyond the data section/);
    // A name as long as the header is quoted, not copied.
    const long = 'n'.repeat(100_000);
    expect(errorOf(build({ [long]: f32([0, 8]) }, 4)).length).toBeLessThan(400);
    expect(errorOf(build('{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4))).toMatch(/tensor "__proto__" cannot be read/);
  });

  it('rejects deep nesting without overflowing the stack', () => {
    const deep = `{"a":{"dtype":"F32","shape":${'['.repeat(100_000)}${']'.repeat(100_000)},"data_offsets":[0,0]}}`;
    expect(errorOf(build(deep))).toMatch(/header: invalid JSON: it is nested deeper than 3 levels/);
  });

  it('caps the header size and the tensor count; 500,000 empty tensors are refused at once', () => {
    // The review's file: a 29 MB header of 500,000 empty tensors (5.2 s and 806 MB before).
    const entries = Array.from({ length: 500_000 }, (_, i) => `"tensor_number_${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    const big = build(`{${entries.join(',')}}`);
    expect(big.length).toBeGreaterThan(MAX_HEADER_BYTES);
    const path = write(big);
    const before = process.memoryUsage().rss;
    let t = performance.now();
    expect(() => loadSafetensors(path)).toThrow(/has a header length of \d+ bytes, more than the limit of 16777216 \(MAX_HEADER_BYTES\)/);
    expect(performance.now() - t).toBeLessThan(200);
    // Under the size cap but over the count cap: refused by the scan, before JSON.parse builds anything.
    const short = Array.from({ length: MAX_TENSORS + 2 }, (_, i) => `"${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    const many = write(build(`{${short.join(',')}}`));
    t = performance.now();
    expect(() => loadSafetensors(many)).toThrow(/the header lists more than 65536 tensors \(MAX_TENSORS\)/);
    expect(performance.now() - t).toBeLessThan(1000);
    expect(errorOf(build(`{${short.slice(0, MAX_TENSORS + 1).join(',')}}`))).toMatch(/more than 65536 tensors/);
    expect(process.memoryUsage().rss - before).toBeLessThan(200e6);
    // At the cap it still loads.
    const ok = write(build(`{${short.slice(0, MAX_TENSORS).join(',')}}`));
    t = performance.now();
    expect(Object.keys(readSafetensorsHeader(ok).tensors)).toHaveLength(MAX_TENSORS);
    expect(performance.now() - t).toBeLessThan(3000);
  });

  it('checks the header length prefix', () => {
    expect(errorOf(new Uint8Array(5))).toMatch(/too short to be a safetensors file \(5 bytes\)/);
    const huge = build('{}');
    new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(errorOf(huge)).toMatch(/more than the limit of 16777216 \(MAX_HEADER_BYTES\)/);
    const long = build('{}');
    new DataView(long.buffer).setBigUint64(0, 100n, true);
    expect(errorOf(long)).toMatch(/invalid header length 100 \(file is 10 bytes: truncated\?\)/);
    const zero = build('{}');
    new DataView(zero.buffer).setBigUint64(0, 0n, true);
    expect(errorOf(zero)).toMatch(/invalid header length 0/);
  });

  it('what TensorLM writes reads back, and a self-digest covers the header and metadata', () => {
    const t = { w: new Tensor(new Float32Array([1, 2, 3]), [3]), i: new Tensor(new Int32Array([7]), [1]) };
    expect(parseSafetensors(serializeSafetensors(t, { a: 'b' })).tensors.w.toArray()).toEqual([1, 2, 3]);
    const path = join(dir, 'digest.safetensors');
    saveSafetensors(path, t, { note: 'hello' }, { selfDigestKey: 'sum' });
    const loaded = loadSafetensors(path, { selfDigestKey: 'sum' });
    expect(loaded.selfDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(loaded.selfDigest).toBe(loaded.metadata.sum);
    // An edit of the metadata (same length) changes the digest; the tensors are untouched.
    const bytes = Buffer.from(readFileSync(path));
    bytes.write('jello', bytes.indexOf('hello'));
    writeFileSync(path, bytes);
    const edited = loadSafetensors(path, { selfDigestKey: 'sum' });
    expect(edited.metadata.note).toBe('jello');
    expect(edited.selfDigest).not.toBe(edited.metadata.sum);
    // A subset of tensors still reads every byte for the digest.
    saveSafetensors(path, t, {}, { selfDigestKey: 'sum' });
    const subset = loadSafetensors(path, { names: ['i'], selfDigestKey: 'sum' });
    expect(Object.keys(subset.tensors)).toEqual(['i']);
    expect(subset.selfDigest).toBe(subset.metadata.sum);
  });
});

describe('JSON from files', () => {
  it('strips a BOM, bounds depth, finds duplicate keys, and names the file in one line', () => {
    expect(parseJsonText('\ufeff{"a": 1}', 'config.json')).toEqual({ a: 1 });
    expect(() => parseJsonText('undefined', 'f.json')).toThrow(/^f\.json: invalid JSON \(/);
    expect(() => parseJsonText('', 'f.json')).toThrow(/^f\.json: invalid JSON: it is empty$/);
    expect(() => parseJsonText('['.repeat(100_000) + ']'.repeat(100_000), 'f.json')).toThrow(/f\.json: invalid JSON: it is nested deeper than 64 levels/);
    expect(scanJson('{"a":"x\\"","b":{"a":1},"c":[{"a":1},{"a":2}]}')).toBeNull();
    expect(scanJson('{"a":1,"b":2,"a":3}')).toMatch(/"a" appears twice/);
    expect(scanJson('{"a":1,"b":2}', { maxTopLevelKeys: 1 })).toMatch(/more than 1 keys/);
    // Parser messages quote the text; the line stays short.
    expect(() => parseJsonText(`{"a": ${'x'.repeat(10_000)}}`, 'f.json')).toThrow(/^.{0,200}$/);
  });
});
