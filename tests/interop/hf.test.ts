/** Hugging Face model folders out of and into TensorLM (src/interop), checked against PyTorch goldens. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportHf, importHf, readHfFolder, writeHfFolder } from '../../src/interop/hf.js';
import { configFromHf, fromHfTensors, hfArchitecture } from '../../src/interop/hf-model.js';
import { fromHfTokenizerJson, toHfTokenizerJson } from '../../src/interop/hf-tokenizer.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { resolveConfig, type TransformerConfigInput } from '../../src/models/config.js';
import { generateText } from '../../src/models/generate.js';
import { countParameters } from '../../src/models/params.js';
import { presetConfig } from '../../src/models/presets.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { tensor, zeros } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { BPETokenizer } from '../../src/tokenizers/bpe.js';
import { CharTokenizer } from '../../src/tokenizers/char.js';
import { sft } from '../../src/posttrain/sft.js';
import { loadRun, train } from '../../src/train/trainer.js';
import { maxAbsDiff } from '../helpers/compare.js';
import { expectOneLineError } from '../helpers/errors.js';
import { expectClose, fromGolden, loadGolden, type GoldenTensor } from '../helpers/golden.js';
import { smallTrainConfig } from '../train/helpers.js';

const TEXT = 'ROMEO: But soft, what light through yonder window breaks?\nJULIET: O Romeo, Romeo! wherefore art thou Romeo?\n'.repeat(20);
const MULTILINGUAL = 'Grüße aus Köln — 東京で会いましょう 🙂 ¿Qué tal? Ωμέγα\t\ttabs  and  spaces\n\n';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'tensorlm-hf-'));
}

function bpe(): BPETokenizer {
  return BPETokenizer.train(TEXT, { vocabSize: 300, specialTokens: ['<|endoftext|>', '<|user_start|>'] });
}

const GPT2_STYLE: TransformerConfigInput = { vocabSize: 300, dModel: 32, nLayers: 2, nHeads: 4, dFF: 64, maxSeqLen: 48, norm: 'layer', mlp: 'gelu', pos: 'learned', bias: true, tieWeights: true };
const LLAMA_STYLE: TransformerConfigInput = { vocabSize: 300, dModel: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, dFF: 48, maxSeqLen: 48, norm: 'rms', mlp: 'swiglu', pos: 'rope', bias: false, tieWeights: false };

function model(config: TransformerConfigInput, seed = 1): TransformerLM {
  const m = new TransformerLM(config, { generator: new Generator(seed) });
  // Norm gains away from 1 and biases away from 0, so a swapped or dropped tensor shows.
  const g = new Generator(seed + 100);
  for (const [name, p] of m.namedParameters()) if (p.ndim === 1) p.storage.set(Array.from({ length: p.size }, () => (name.endsWith('bias') ? 0.1 : 1) + 0.2 * g.normal()));
  m.eval();
  return m;
}

const IDS = tensor(Int32Array.from({ length: 2 * 12 }, (_, i) => (i * 37 + 5) % 300), { shape: [2, 12] });

describe('Hugging Face export and import', () => {
  it.each([
    ['GPT2LMHeadModel', GPT2_STYLE],
    ['LlamaForCausalLM', LLAMA_STYLE],
  ] as const)('%s: export → import gives bit-identical weights, logits and samples', (arch, config) => {
    const dir = join(tmp(), 'out');
    const m = model(config);
    const tok = bpe();
    const result = writeHfFolder(dir, m, tok);
    expect(result.architecture).toBe(arch);
    expect(readdirSync(dir)).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const hfConfig = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(hfConfig.architectures).toEqual([arch]);
    expect(hfConfig.bos_token_id).toBe(tok.specialTokens['<|endoftext|>']);
    const back = readHfFolder(dir);
    expect(back.config).toEqual(resolveConfig(config));
    const a = m.stateDict();
    const b = back.model.stateDict();
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const name of Object.keys(a)) expect(b[name].toTypedArray(), name).toEqual(a[name].toTypedArray());
    expect(maxAbsDiff(back.model.forward(IDS).logits, m.forward(IDS).logits)).toBe(0);
    const sample = (lm: TransformerLM, t: typeof tok | typeof back.tokenizer) => generateText(lm, t, 'ROMEO:', { maxNewTokens: 30, temperature: 0.8, seed: 3 }).text;
    expect(sample(back.model, back.tokenizer)).toBe(sample(m, tok));
  });

  describe('against PyTorch (tools/golden/hf.py: LlamaForCausalLM and GPT2LMHeadModel written from HF\'s equations)', () => {
    const golden = loadGolden<{ cases: { name: string; config: Record<string, unknown>; tensors: Record<string, GoldenTensor>; ids: GoldenTensor; logits: GoldenTensor }[] }>('hf.json');
    it.each(golden.cases.map((c) => [c.name, c] as const))('%s: a random HF checkpoint imports with PyTorch\'s logits, and exports back to the same tensors', (_name, c) => {
      const folder = join(tmp(), 'hf');
      mkdirSync(folder);
      writeFileSync(join(folder, 'config.json'), JSON.stringify(c.config));
      const vocab = c.config.vocab_size as number;
      const chars = Array.from({ length: vocab }, (_, i) => String.fromCodePoint(0x61 + i));
      writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(toHfTokenizerJson(new CharTokenizer(chars))));
      const tensors = Object.fromEntries(Object.entries(c.tensors).map(([n, g]) => [n, fromGolden(g).value]));
      saveSafetensors(join(folder, 'model.safetensors'), tensors, { format: 'pt' });
      const back = readHfFolder(folder);
      expectClose(back.model.forward(fromGolden(c.ids).value).logits, c.logits, `${c.name} logits`, 1e-5, 1e-5);
      const out = join(tmp(), 'again');
      writeHfFolder(out, back.model, back.tokenizer);
      const again = loadSafetensors(join(out, 'model.safetensors')).tensors;
      expect(Object.keys(again).sort()).toEqual(Object.keys(tensors).sort());
      for (const [n, t] of Object.entries(tensors)) expect(again[n].toTypedArray(), n).toEqual(t.toTypedArray());
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))).toMatchObject(c.config);
    });
  });

  it("an 'interleaved' RoPE model is written in HF's rotate-half layout and computes the same logits", () => {
    const dir = join(tmp(), 'out');
    const m = model({ ...LLAMA_STYLE, ropePairing: 'interleaved' });
    writeHfFolder(dir, m, bpe());
    const back = readHfFolder(dir);
    expect(back.config.ropePairing).toBe('half');
    expect(maxAbsDiff(back.model.forward(IDS).logits, m.forward(IDS).logits)).toBeLessThan(1e-5);
  });

  it('tokenizer.json keeps every special token and encodes a multilingual text to the same ids', () => {
    const tok = bpe();
    const hf = toHfTokenizerJson(tok);
    expect((hf.added_tokens as { content: string; id: number }[]).map((t) => [t.content, t.id])).toEqual(Object.entries(tok.specialTokens).sort((x, y) => x[1] - y[1]));
    const back = fromHfTokenizerJson(JSON.parse(JSON.stringify(hf)), 'tokenizer.json');
    const text = `<|user_start|>${MULTILINGUAL}<|endoftext|>`;
    expect(back.encode(text)).toEqual(tok.encode(text));
    expect(back.decode(back.encode(text))).toBe(text);
    expect(back.toJSON()).toEqual(tok.toJSON());
    // A user pattern travels as a Split pre-tokenizer.
    const custom = BPETokenizer.train(TEXT, { vocabSize: 280, pattern: String.raw`\s?\w+|\s+|[^\s\w]+` });
    const customBack = fromHfTokenizerJson(toHfTokenizerJson(custom), 'tokenizer.json');
    expect(customBack.encode(MULTILINGUAL)).toEqual(custom.encode(MULTILINGUAL));
    // A character tokenizer is a vocabulary-only BPE with a Fuse decoder.
    const chars = CharTokenizer.fromText(TEXT + MULTILINGUAL, { specialTokens: ['<|bos|>'] });
    const charJson = toHfTokenizerJson(chars);
    expect(charJson.decoder).toEqual({ type: 'Fuse' });
    const charBack = fromHfTokenizerJson(charJson, 'tokenizer.json');
    expect(charBack.encode(`<|bos|>${MULTILINGUAL}`)).toEqual(chars.encode(`<|bos|>${MULTILINGUAL}`));
  });

  it('reads sharded checkpoints and F16 / BF16 weights (converted to float32)', () => {
    const dir = join(tmp(), 'out');
    const m = model(LLAMA_STYLE);
    writeHfFolder(dir, m, bpe());
    const sharded = join(tmp(), 'sharded');
    mkdirSync(sharded);
    for (const f of ['config.json', 'tokenizer.json']) writeFileSync(join(sharded, f), readFileSync(join(dir, f)));
    const { tensors } = loadSafetensors(join(dir, 'model.safetensors'));
    const names = Object.keys(tensors);
    const half = Math.floor(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((list, k) => {
      const file = `model-0000${k + 1}-of-00002.safetensors`;
      saveSafetensors(join(sharded, file), Object.fromEntries(list.map((n) => [n, tensors[n]])), { format: 'pt' });
      for (const n of list) weightMap[n] = file;
    });
    writeFileSync(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    expect(maxAbsDiff(readHfFolder(sharded).model.forward(IDS).logits, m.forward(IDS).logits)).toBe(0);

    // F16 and BF16 files, written byte by byte: the values that survive the rounding load exactly.
    for (const dtype of ['F16', 'BF16'] as const) {
      const folder = join(tmp(), dtype);
      mkdirSync(folder);
      for (const f of ['config.json', 'tokenizer.json']) writeFileSync(join(folder, f), readFileSync(join(dir, f)));
      writeHalfSafetensors(join(folder, 'model.safetensors'), tensors, dtype);
      const loaded = readHfFolder(folder).model;
      expect(maxAbsDiff(loaded.forward(IDS).logits, m.forward(IDS).logits)).toBeLessThan(dtype === 'F16' ? 0.05 : 0.2);
      const w = loaded.stateDict()['layers.0.attn.wq.weight'].toTypedArray();
      const ref = tensors['model.layers.0.self_attn.q_proj.weight'].toTypedArray();
      expect(Math.abs(w[0] - ref[0])).toBeLessThan(Math.abs(ref[0]) * (dtype === 'F16' ? 1e-3 : 1e-2));
    }
  });

  it("maps TinyLlama's real config.json and key set by shape (1,100,048,384 parameters)", () => {
    const tinyllama = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: 32000,
      hidden_size: 2048,
      intermediate_size: 5632,
      num_hidden_layers: 22,
      num_attention_heads: 32,
      num_key_value_heads: 4,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-5,
      rope_theta: 10000.0,
      rope_scaling: null,
      hidden_act: 'silu',
      tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
      bos_token_id: 1,
      eos_token_id: 2,
      initializer_range: 0.02,
      pretraining_tp: 1,
      use_cache: true,
      attention_bias: false,
    };
    const { arch, config } = configFromHf(tinyllama, 'config.json');
    expect(config).toEqual(presetConfig('tinyllama-1.1b', { initStd: 0.02 }));
    expect(countParameters(config).total).toBe(1_100_048_384);
    // The real checkpoint's 201 tensors, as zero-cost broadcast views of the right shapes.
    const shapes: [string, number[]][] = [['model.embed_tokens.weight', [32000, 2048]], ['model.norm.weight', [2048]], ['lm_head.weight', [32000, 2048]]];
    for (let i = 0; i < 22; i++) {
      const p = `model.layers.${i}`;
      shapes.push([`${p}.self_attn.q_proj.weight`, [2048, 2048]], [`${p}.self_attn.k_proj.weight`, [256, 2048]], [`${p}.self_attn.v_proj.weight`, [256, 2048]], [`${p}.self_attn.o_proj.weight`, [2048, 2048]]);
      shapes.push([`${p}.mlp.gate_proj.weight`, [5632, 2048]], [`${p}.mlp.up_proj.weight`, [5632, 2048]], [`${p}.mlp.down_proj.weight`, [2048, 5632]]);
      shapes.push([`${p}.input_layernorm.weight`, [2048]], [`${p}.post_attention_layernorm.weight`, [2048]]);
    }
    expect(shapes).toHaveLength(201);
    const tensors = new Map(shapes.map(([n, s]) => [n, zeros([1]).expand(s.map(() => 1)).expand(s)] as [string, Tensor]));
    const state = fromHfTensors(tensors, config, arch, 'TinyLlama');
    // The names a TransformerLM of this structure has (built narrow: the shapes come from the counts).
    const narrow = new TransformerLM({ ...config, vocabSize: 8, dModel: 64, dFF: 16, maxSeqLen: 8 }).stateDict();
    expect(Object.keys(state).sort()).toEqual(Object.keys(narrow).sort());
    expect(Object.values(state).reduce((n, t) => n + t.size, 0)).toBe(1_100_048_384);
    expect(state['layers.21.attn.wk.weight'].shape).toEqual([256, 2048]);
    expect(state['head.weight'].shape).toEqual([32000, 2048]);
  });

  it('gives one-line errors for what it cannot read or write, and leaves nothing partial', () => {
    const base = tmp();
    const dir = join(base, 'out');
    writeHfFolder(dir, model(LLAMA_STYLE), bpe());
    const broken = (name: string, edit: (folder: string) => void) => {
      const folder = join(base, name);
      mkdirSync(folder);
      for (const f of readdirSync(dir)) writeFileSync(join(folder, f), readFileSync(join(dir, f)));
      edit(folder);
      return folder;
    };
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expectOneLineError(() => readHfFolder(broken('arch', (f) => writeFileSync(join(f, 'config.json'), JSON.stringify({ ...cfg, architectures: ['MistralForCausalLM'] })))), /unsupported architecture "MistralForCausalLM" \(TensorLM reads LlamaForCausalLM and GPT2LMHeadModel\)/);
    expectOneLineError(() => readHfFolder(broken('shape', (f) => writeFileSync(join(f, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 40 })))), /tensor 'model.layers.0.mlp.gate_proj.weight' has shape \[48, 32\], expected \[40, 32\]/);
    expectOneLineError(
      () =>
        readHfFolder(
          broken('shard', (f) => {
            writeFileSync(join(f, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.norm.weight': 'model-00002-of-00002.safetensors' } }));
          }),
        ),
      /lists shard model-00002-of-00002.safetensors, which is missing/,
    );
    expectOneLineError(
      () =>
        readHfFolder(
          broken('truncated', (f) => {
            const bytes = readFileSync(join(f, 'model.safetensors'));
            writeFileSync(join(f, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
          }),
        ),
      /truncated|shorter|extends past/,
    );
    expectOneLineError(() => readHfFolder(broken('tok', (f) => writeFileSync(join(f, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 100 })))), /has 300 tokens, more than vocab_size 100/);
    expectOneLineError(() => readHfFolder(join(base, 'nothing')), /is not a folder/);
    // Configs no Hugging Face architecture expresses.
    expectOneLineError(() => hfArchitecture(resolveConfig({ ...LLAMA_STYLE, mlp: 'gelu' })), /cannot be written as LlamaForCausalLM or GPT2LMHeadModel: mlp 'gelu' \(Llama uses 'swiglu'\) — the nearer one is LlamaForCausalLM/);
    expectOneLineError(() => hfArchitecture(resolveConfig({ ...GPT2_STYLE, mup: { baseWidth: 16 } })), /μP/);
    // A sliding window shorter than the context is not Llama's attention; one as long hides nothing.
    expectOneLineError(() => hfArchitecture(resolveConfig({ ...LLAMA_STYLE, slidingWindow: 4 })), /slidingWindow 4 \(neither has sliding-window attention/);
    expect(hfArchitecture(resolveConfig({ ...LLAMA_STYLE, slidingWindow: resolveConfig(LLAMA_STYLE).maxSeqLen }))).toBe('LlamaForCausalLM');
    // Linear attention has the same weights as softmax attention, so an export would be silently wrong.
    expectOneLineError(() => hfArchitecture(resolveConfig({ ...GPT2_STYLE, attention: 'linear' })), /attention 'linear' \(neither has linear attention/);
    // The target must be new; a failed export leaves no folder and no temporary folder.
    expectOneLineError(() => writeHfFolder(dir, model(LLAMA_STYLE), bpe()), /already exists and is not an empty folder/);
    const failed = join(base, 'failed');
    expectOneLineError(() => writeHfFolder(failed, model({ ...LLAMA_STYLE, vocabSize: 100 }), bpe()), /the tokenizer has 300 tokens, more than the model's vocabSize 100/);
    expect(existsSync(failed)).toBe(false);
    expect(readdirSync(base).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('tensorlm export of a trained run, import as a run that samples, evaluates and resumes training', async () => {
    const base = tmp();
    const data = join(base, 'corpus.txt');
    writeFileSync(data, TEXT);
    const trained = await train(smallTrainConfig(base, data, { name: 'src', maxSteps: 6, evalInterval: 6 }));
    const out = join(base, 'hf');
    expect(exportHf(trained.files.dir, out).architecture).toBe('GPT2LMHeadModel');
    const imported = importHf(out, { outDir: base, name: 'back', train: { data, maxSteps: 2, maxTime: null } });
    const run = loadRun(imported.files.dir);
    const vocab = trained.tokenizer.vocabSize;
    const ids = tensor(Int32Array.from({ length: 24 }, (_, i) => (i * 7) % vocab), { shape: [2, 12] });
    expect(maxAbsDiff(run.model.forward(ids).logits, trained.model.forward(ids).logits)).toBe(0);
    expect(generateText(run.model, run.tokenizer, 'RO', { maxNewTokens: 20, temperature: 0 }).text).toBe(generateText(trained.model, trained.tokenizer, 'RO', { maxNewTokens: 20, temperature: 0 }).text);
    const resumed = await train({ outDir: base, name: 'back' }, { resume: true });
    expect(resumed.step).toBe(2);
    // The post-training stages take it as their base.
    const chats = join(base, 'chats.jsonl');
    writeFileSync(chats, Array.from({ length: 8 }, () => JSON.stringify({ messages: [{ role: 'user', content: 'Romeo' }, { role: 'assistant', content: 'light' }] })).join('\n') + '\n');
    const tuned = await sft({ base: imported.files.dir, outDir: base, name: 'chat', data: chats, maxSteps: 2, evalInterval: 2, evalIters: 1, batchSize: 2, evalExamples: 2, warmupSteps: 0 });
    expect(tuned.step).toBe(2);
  }, 60_000);
});

/** A safetensors file of F16 or BF16 tensors (what Hugging Face checkpoints usually hold). */
function writeHalfSafetensors(path: string, tensors: Record<string, Tensor>, dtype: 'F16' | 'BF16'): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const src = t.contiguous().toTypedArray() as Float32Array;
    const out = new Uint16Array(src.length);
    const bits = new Uint32Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength));
    for (let i = 0; i < src.length; i++) out[i] = dtype === 'BF16' ? bits[i] >>> 16 : toF16(src[i]);
    const bytes = new Uint8Array(out.buffer);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...chunks]));
}

/** float32 → IEEE half, rounding to nearest (normal range only: the weights here are small and non-zero). */
function toF16(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;
  const mant = x & 0x7fffff;
  let h = sign | (exp << 10) | (mant >>> 13);
  if (mant & 0x1000) h++;
  return h;
}
