/**
 * Reading tensors straight into given tensors (issue 18): `loadSafetensors(path, { into })` and
 * loadModuleSafetensors read each tensor from the file into its destination's own storage, with
 * the same values as the whole-tensor read — F32 directly, F16/BF16/F64 converted chunk by chunk
 * (tensors larger than the reader's chunk included) — and one-line errors for a wrong shape or a
 * truncated file.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileErrorOf } from '../helpers/errors.js';
import '../../src/index.js';
import { halfToFloat } from '../../src/io/half.js';
import { loadModuleSafetensorsBytes, parseSafetensors, serializeModuleSafetensors } from '../../src/io/safetensors-bytes.js';
import { loadModuleSafetensors, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { Generator } from '../../src/tensor/random.js';
import { Tensor } from '../../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'tensorlm-st-into-'));
let counter = 0;
const path = () => join(dir, `case-${counter++}.safetensors`);

/** A safetensors file of raw tensors (dtype, shape, bytes), in the order given. */
function build(tensors: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + h.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let offset = 8 + h.length;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, offset);
    offset += t.bytes.length;
  }
  return out;
}

const values = (t: Tensor) => Array.from(t.toTypedArray() as Float32Array);

const oneLine = fileErrorOf;

describe('loadSafetensors into given tensors', () => {
  it('F32: the same values as the plain read, in the destination’s own storage, and the same digest', () => {
    const g = new Generator(1);
    const a = new Tensor(Float32Array.from({ length: 12 }, () => g.normal()), [3, 4]);
    const b = new Tensor(Float32Array.from({ length: 5 }, () => g.normal()), [5]);
    const c = new Tensor(Int32Array.from([1, -2, 3]), [3]);
    const file = path();
    saveSafetensors(file, { a, b, c }, { format: 'pt' }, { selfDigestKey: 'sha' });
    const plain = loadSafetensors(file, { selfDigestKey: 'sha' });
    const dest = new Tensor(new Float32Array(12), [3, 4]);
    const storage = dest.storage;
    const got = loadSafetensors(file, { selfDigestKey: 'sha', into: { a: dest } });
    expect(values(dest)).toEqual(values(plain.tensors.a));
    expect(dest.storage).toBe(storage);
    expect(got.tensors.a).toBe(dest);
    // Only what was asked for comes back; the rest was hashed and dropped.
    expect(Object.keys(got.tensors)).toEqual(['a']);
    expect(got.selfDigest).toBe(plain.selfDigest);
    expect(got.selfDigest).toBe(plain.metadata.sha);
    // `names` and `into` together; a view into a bigger buffer is filled in place.
    const big = new Float32Array(20).fill(7);
    const view = new Tensor(big, [5], undefined, 10);
    const both = loadSafetensors(file, { names: ['c'], into: { b: view } });
    expect(Array.from(big.subarray(10, 15))).toEqual(values(plain.tensors.b));
    expect(Array.from(big.subarray(0, 10))).toEqual(new Array(10).fill(7));
    expect(Array.from(both.tensors.c.toTypedArray())).toEqual([1, -2, 3]);
  });

  it('F16, BF16 and F64 are converted chunk by chunk: the same values as the bytes reader, tensors over the chunk size included', () => {
    // 4.5 M F16 elements (9 MB) and 1.1 M F64 elements (8.8 MB): both cross the reader's 8 MiB chunk.
    const n16 = 4_500_000;
    const half = new Uint16Array(n16);
    for (let i = 0; i < n16; i++) half[i] = (i * 7919) & 0xffff;
    const bf = new Uint16Array([0x3f80, 0xc000, 0x0001, 0x7f80, 0xff80, 0x4049]);
    const n64 = 1_100_000;
    const f64 = Float64Array.from({ length: n64 }, (_, i) => Math.sin(i) * 1e3 + 1 / (i + 1));
    const bytes = build({
      h: { dtype: 'F16', shape: [n16], bytes: new Uint8Array(half.buffer) },
      bf: { dtype: 'BF16', shape: [2, 3], bytes: new Uint8Array(bf.buffer) },
      d: { dtype: 'F64', shape: [1100, 1000], bytes: new Uint8Array(f64.buffer) },
    });
    const file = path();
    writeFileSync(file, bytes);
    const reference = parseSafetensors(bytes);
    const into = { h: new Tensor(new Float32Array(n16), [n16]), bf: new Tensor(new Float32Array(6), [2, 3]), d: new Tensor(new Float32Array(n64), [1100, 1000]) };
    loadSafetensors(file, { into });
    // Bit for bit (NaNs included).
    const bits = (t: Tensor) => Buffer.from(t.storage.buffer, t.storage.byteOffset, t.storage.byteLength);
    for (const name of ['h', 'bf', 'd'] as const) expect(bits(into[name]).equals(bits(reference.tensors[name])), name).toBe(true);
    // Independent of both readers: the conversions themselves.
    for (const i of [0, 1, 9362, 4_194_303, 4_194_304, n16 - 1]) expect(Object.is(into.h.storage[i], halfToFloat(half[i])), `F16 element ${i}`).toBe(true);
    expect(values(into.bf)).toEqual([1, -2, new Float32Array(new Uint32Array([1 << 16]).buffer)[0], Infinity, -Infinity, 3.140625]);
    for (const i of [0, 1, 1_048_575, 1_048_576, n64 - 1]) expect(into.d.storage[i]).toBe(Math.fround(f64[i]));
  });

  it('a sink takes a float tensor’s values in order, chunk by chunk (F32 and F16 over the chunk size), and onRead follows each destination, which is then not kept', () => {
    const n32 = 3_000_000; // 12 MB: two chunks
    const f32 = Float32Array.from({ length: n32 }, (_, i) => Math.fround(Math.sin(i) * 10));
    const n16 = 4_500_000;
    const half = new Uint16Array(n16);
    for (let i = 0; i < n16; i++) half[i] = (i * 7919) & 0xffff;
    const bytes = build({
      a: { dtype: 'F32', shape: [1000, 3000], bytes: new Uint8Array(f32.buffer) },
      h: { dtype: 'F16', shape: [n16], bytes: new Uint8Array(half.buffer) },
      t: { dtype: 'F32', shape: [2], bytes: new Uint8Array(new Float32Array([5, 6]).buffer) },
    });
    const file = path();
    writeFileSync(file, bytes);
    const reference = parseSafetensors(bytes);
    const sink = (n: number, shape: number[]) => {
      const got = new Float32Array(n);
      let next = 0;
      let chunks = 0;
      return {
        got,
        chunks: () => chunks,
        shape,
        write(values: Float32Array, offset: number) {
          expect(offset).toBe(next);
          got.set(values, offset);
          next += values.length;
          chunks++;
        },
      };
    };
    const a = sink(n32, [1000, 3000]);
    const h = sink(n16, [n16]);
    const t = new Tensor(new Float32Array(2), [2]);
    const order: string[] = [];
    const loaded = loadSafetensors(file, { into: { a, h, t }, onRead: (name) => order.push(name) });
    expect(order).toEqual(['a', 'h', 't']);
    expect(Object.keys(loaded.tensors)).toEqual([]);
    expect(a.chunks()).toBeGreaterThan(1);
    expect(h.chunks()).toBeGreaterThan(1);
    const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    expect(bits(a.got).equals(bits(reference.tensors.a.storage as Float32Array))).toBe(true);
    expect(bits(h.got).equals(bits(reference.tensors.h.storage as Float32Array))).toBe(true);
    expect(values(t)).toEqual([5, 6]);
    // A sink for an integer tensor: one line.
    const ints = path();
    saveSafetensors(ints, { i: new Tensor(new Int32Array([1, 2]), [2], undefined, 0, 'int32') });
    expect(oneLine(() => loadSafetensors(ints, { into: { i: sink(2, [2]) } }), ints)).toMatch(/tensor 'i' is I32; a sink takes float tensors only/);
  });

  it('a destination of another shape, a missing tensor, a truncated file: one line naming the file', () => {
    const file = path();
    saveSafetensors(file, { w: new Tensor(new Float32Array(6), [2, 3]) });
    expect(oneLine(() => loadSafetensors(file, { into: { w: new Tensor(new Float32Array(6), [3, 2]) } }), file)).toMatch(/tensor 'w' has shape \[2, 3\], its destination's is \[3, 2\]/);
    expect(oneLine(() => loadSafetensors(file, { into: { v: new Tensor(new Float32Array(6), [2, 3]) } }), file)).toMatch(/has no tensor 'v'/);
    const cut = path();
    writeFileSync(cut, readFileSync(file).subarray(0, -4));
    expect(oneLine(() => loadSafetensors(cut, { into: { w: new Tensor(new Float32Array(6), [2, 3]) } }), cut)).toMatch(/beyond the data section of \d+ bytes \(truncated file\?\)/);
  });

  it('a destination that is not contiguous, or of another dtype, is filled through a copy of that tensor', () => {
    const file = path();
    const w = new Tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    saveSafetensors(file, { w, i: new Tensor(Int32Array.from([4, 5]), [2]) });
    const base = new Tensor(new Float32Array(6), [3, 2]);
    const transposed = base.transpose(0, 1);
    const asFloat = new Tensor(new Float32Array(2), [2]);
    loadSafetensors(file, { into: { w: transposed, i: asFloat } });
    expect(values(transposed.contiguous())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(values(asFloat)).toEqual([4, 5]);
  });
});

describe('loadModuleSafetensors reads into the module’s own tensors', () => {
  const config = { vocabSize: 40, dModel: 16, nLayers: 2, nHeads: 2, dFF: 32, maxSeqLen: 16 };

  it('the same weights as the bytes path, tied weights included, parameters kept in place', () => {
    for (const tieWeights of [true, false]) {
      const source = new TransformerLM({ ...config, tieWeights }, { generator: new Generator(1) });
      const file = path();
      source.saveSafetensors(file);
      const viaFile = new TransformerLM({ ...config, tieWeights }, { generator: new Generator(2) });
      const storages = viaFile.parameters().map((p) => p.storage);
      const result = viaFile.loadSafetensors(file);
      const viaBytes = new TransformerLM({ ...config, tieWeights }, { generator: new Generator(3) });
      expect(loadModuleSafetensorsBytes(viaBytes, readFileSync(file))).toEqual(result);
      expect(viaFile.parameters().map((p) => p.storage)).toEqual(storages);
      for (const [name, t] of Object.entries(source.stateDict())) {
        expect(values(viaFile.stateDict()[name]), name).toEqual(values(t));
        expect(values(viaBytes.stateDict()[name]), name).toEqual(values(t));
      }
    }
  });

  it('a model of another shape: loadStateDict’s one-line message, as from bytes; strict: false skips names', () => {
    const source = new TransformerLM(config, { generator: new Generator(1) });
    const file = path();
    writeFileSync(file, serializeModuleSafetensors(source));
    const wider = () => new TransformerLM({ ...config, dFF: 48 }, { generator: new Generator(2) });
    const messageOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    };
    const expected = messageOf(() => loadModuleSafetensorsBytes(wider(), readFileSync(file)));
    expect(expected).toMatch(/^loadStateDict: size mismatch for layers\.0\.ffn\.\w+\.(weight|bias): copying a param with shape \[\d+(, \d+)?\], the shape in current model is \[\d+(, \d+)?\]/);
    // From a file: the same message (at most three problems: loadStateDict's), on one line, naming the file.
    const fromFile = messageOf(() => loadModuleSafetensors(wider(), file));
    expect(fromFile).toBe(`safetensors: ${file}: ${expected}`);
    expect(fromFile).not.toContain('\n');
    // strict: false with a renamed-away tensor: the rest loads, the missing name is reported.
    const partial = new TransformerLM(config, { generator: new Generator(5) });
    const result = loadModuleSafetensors(partial, file, { strict: false, rename: (n) => (n === 'norm.weight' ? null : n) });
    expect(result.missingKeys).toEqual(['norm.weight']);
    expect(values(partial.stateDict()['tokEmb.weight'])).toEqual(values(source.stateDict()['tokEmb.weight']));
  });
});
