/**
 * safetensors: round trips of tensors and whole models, the byte layout, reading other dtypes
 * (F16, BF16, F64, I64), atomic writes, tied-weight aliases and malformed files.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Generator, io, nn, noGrad, randint, randn, tensor, TransformerLM, zeros, type Tensor } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tensorlm-safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A safetensors file written byte by byte, as another implementation would. */
function handWritten(path: string, entries: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[], pad = 0): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  const text = Buffer.from(JSON.stringify(header) + ' '.repeat(pad));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  writeFileSync(path, Buffer.concat([len, text, ...entries.map((e) => Buffer.from(e.bytes))]));
}

describe('safetensors files', () => {
  it('round-trips float32, int32 and bool tensors, views included, with metadata', () => {
    const path = join(dir, 'round.safetensors');
    const base = randn([3, 4], { generator: new Generator(1) });
    const tensors = { a: base, 't.view': base.transpose(0, 1), ids: tensor([[1, -2, 3]], { dtype: 'int32' }), mask: tensor([true, false, true]), scalar: tensor(2.5) };
    io.saveSafetensors(path, tensors, { note: 'hello' });
    const { tensors: back, metadata } = io.loadSafetensors(path);
    expect(metadata).toEqual({ note: 'hello' });
    for (const [name, t] of Object.entries(tensors)) {
      expect(back[name].shape, name).toEqual(t.shape);
      expect(back[name].dtype, name).toBe(t.dtype);
      expect(back[name].toArray(), name).toEqual(t.toArray());
    }
    const header = io.readSafetensorsHeader(path);
    expect(header.tensors['t.view']).toEqual({ dtype: 'F32', shape: [4, 3], data_offsets: [48, 96] });
    // layout: u64 little-endian header length, a header padded to 8 bytes, then the data
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(header.dataStart).toBe(8 + n);
    expect(bytes.length).toBe(8 + n + 48 + 48 + 12 + 3 + 4);
    expect(new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + n, bytes.byteOffset + 8 + n + 48))).toEqual(base.toTypedArray());
  });

  it('reads F16, BF16, F64 and I64 tensors written by other tools (converted to float32 / int32)', () => {
    const path = join(dir, 'dtypes.safetensors');
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001]); // 1, -2, ~0.33325, smallest subnormal
    const f32 = new Float32Array([1.5, -3.25, 1e-3]);
    const bf16 = new Uint16Array(Array.from(new Uint32Array(f32.buffer), (b) => b >>> 16));
    const f64 = new Float64Array([0.1, -7]);
    const i64 = new BigInt64Array([5n, -6n]);
    handWritten(path, [
      { name: 'h', dtype: 'F16', shape: [4], bytes: new Uint8Array(f16.buffer) },
      { name: 'b', dtype: 'BF16', shape: [3], bytes: new Uint8Array(bf16.buffer) },
      { name: 'd', dtype: 'F64', shape: [2, 1], bytes: new Uint8Array(f64.buffer) },
      { name: 'q', dtype: 'I64', shape: [2], bytes: new Uint8Array(i64.buffer) },
    ], 3);
    const { tensors } = io.loadSafetensors(path);
    expect(tensors.h.toArray()).toEqual([1, -2, Math.fround(0.333251953125), Math.fround(2 ** -24)]);
    expect(tensors.b.toArray()).toEqual([1.5, -3.25, Math.fround(new Float32Array(new Uint32Array([bf16[2] << 16]).buffer)[0])]);
    expect(tensors.d.toArray()).toEqual([Math.fround(0.1), -7]);
    expect(tensors.q.dtype).toBe('int32');
    expect(tensors.q.toArray()).toEqual([5, -6]);
  });

  it('writes atomically: a failed save leaves the old file intact and no temporary file behind', () => {
    const path = join(dir, 'atomic.safetensors');
    io.saveSafetensors(path, { w: tensor([1, 2, 3]) });
    const before = readFileSync(path);
    const bad = zeros([2]);
    bad.contiguous = () => {
      throw new Error('disk full');
    };
    expect(() => io.saveSafetensors(path, { w: tensor([9, 9, 9]), bad })).toThrow('disk full');
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.includes('atomic'))).toEqual(['atomic.safetensors']);
    // a successful save replaces the file as a whole
    io.saveSafetensors(path, { w: tensor([4, 5]) });
    expect(io.loadSafetensors(path).tensors.w.toArray()).toEqual([4, 5]);
    expect(readdirSync(dir).some((f) => f.includes('.tmp-'))).toBe(false);
  });

  it('reports malformed files clearly', () => {
    const short = join(dir, 'short.safetensors');
    writeFileSync(short, Buffer.from([1, 2, 3]));
    expect(() => io.loadSafetensors(short)).toThrow(/too short/);
    const badLen = join(dir, 'badlen.safetensors');
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(1000n);
    writeFileSync(badLen, b);
    expect(() => io.loadSafetensors(badLen)).toThrow(/invalid header length 1000/);
    const wrongSize = join(dir, 'size.safetensors');
    handWritten(wrongSize, [{ name: 'x', dtype: 'F32', shape: [3], bytes: new Uint8Array(8) }]);
    expect(() => io.loadSafetensors(wrongSize)).toThrow(/8 bytes for F32 shape \[3\], expected 12/);
    const odd = join(dir, 'odd.safetensors');
    handWritten(odd, [{ name: 'x', dtype: 'C64', shape: [1], bytes: new Uint8Array(8) }]);
    expect(() => io.loadSafetensors(odd)).toThrow(/unsupported dtype 'C64'/);
    expect(() => io.loadSafetensors(join(dir, 'round.safetensors'), { names: ['nope'] })).toThrow(/no tensor 'nope'/);
  });
});

describe('model checkpoints', () => {
  it('TransformerLM.saveSafetensors / loadSafetensors round-trip gives identical logits', () => {
    const config = { vocabSize: 17, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 32, maxSeqLen: 8, norm: 'rms', mlp: 'swiglu', pos: 'rope', tieWeights: false, bias: false } as const;
    const a = new TransformerLM(config, { generator: new Generator(1) });
    const b = new TransformerLM(config, { generator: new Generator(2) });
    const path = join(dir, 'lm.safetensors');
    a.saveSafetensors(path);
    const ids = randint(0, 17, [2, 8], { generator: new Generator(3) });
    const before = noGrad(() => b.forward(ids).logits);
    const result = b.loadSafetensors(path);
    expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const la = noGrad(() => a.forward(ids).logits);
    const lb = noGrad(() => b.forward(ids).logits);
    expect(lb.toArray()).toEqual(la.toArray());
    expect(lb.toArray()).not.toEqual(before.toArray());
    expect(JSON.parse(io.readSafetensorsHeader(path).metadata.config)).toMatchObject(config);
    // a model of another shape refuses the file
    const other = new TransformerLM({ ...config, dFF: 24 });
    expect(() => other.loadSafetensors(path)).toThrow(/size mismatch for layers.0.ffn.w1.weight/);
  });

  it('tied (shared) tensors are written once and restored under every name', () => {
    class Tied extends nn.Module {
      emb = nn.parameter(randn([3, 2], { generator: new Generator(4) }));
      inner = new (class extends nn.Module {
        w: Tensor | null = null;
        forward(x: Tensor): Tensor {
          return x;
        }
      })();
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    const m = new Tied();
    m.inner.w = m.emb;
    const path = join(dir, 'tied.safetensors');
    io.saveModuleSafetensors(m, path);
    const header = io.readSafetensorsHeader(path);
    expect(Object.keys(header.tensors)).toEqual(['emb']);
    expect(JSON.parse(header.metadata.aliases)).toEqual({ 'inner.w': 'emb' });
    const m2 = new Tied();
    m2.inner.w = m2.emb;
    expect(io.loadModuleSafetensors(m2, path)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(m2.emb.toArray()).toEqual(m.emb.toArray());
  });
});

describe('Hugging Face Llama names', () => {
  it('maps HF tensor names to TransformerLM names and loads such a file', () => {
    expect(io.huggingFaceLlamaName('model.layers.3.self_attn.k_proj.weight')).toBe('layers.3.attn.wk.weight');
    expect(io.huggingFaceLlamaName('model.layers.0.mlp.gate_proj.weight')).toBe('layers.0.ffn.w1.weight');
    expect(io.huggingFaceLlamaName('model.layers.0.mlp.up_proj.weight')).toBe('layers.0.ffn.w3.weight');
    expect(io.huggingFaceLlamaName('model.layers.0.post_attention_layernorm.weight')).toBe('layers.0.ffnNorm.weight');
    expect(io.huggingFaceLlamaName('model.layers.0.self_attn.rotary_emb.inv_freq')).toBeNull();
    const config = { vocabSize: 11, dModel: 8, nLayers: 2, nHeads: 2, nKvHeads: 1, dFF: 12, maxSeqLen: 6, norm: 'rms', mlp: 'swiglu', pos: 'rope', tieWeights: false, bias: false } as const;
    const a = new TransformerLM(config, { generator: new Generator(7) });
    const toHf: Record<string, string> = {};
    const names = ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight'];
    for (let i = 0; i < 2; i++) {
      for (const p of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'input_layernorm', 'post_attention_layernorm']) names.push(`model.layers.${i}.${p}.weight`);
    }
    for (const n of names) toHf[io.huggingFaceLlamaName(n) as string] = n;
    const state = a.stateDict();
    const hf = Object.fromEntries(Object.entries(state).map(([k, v]) => [toHf[k], v]));
    hf['model.layers.0.self_attn.rotary_emb.inv_freq'] = tensor([1, 0.01]);
    const path = join(dir, 'hf.safetensors');
    io.saveSafetensors(path, hf);
    const b = new TransformerLM(config);
    expect(b.loadSafetensors(path, { rename: io.huggingFaceLlamaName })).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const ids = randint(0, 11, [1, 6], { generator: new Generator(8) });
    expect(noGrad(() => b.forward(ids).logits).toArray()).toEqual(noGrad(() => a.forward(ids).logits).toArray());
  });
});
