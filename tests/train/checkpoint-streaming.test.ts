/**
 * Loading a checkpoint for inference reads each weight straight into the model (issue 18): the
 * same values as the whole-file read, the optimizer's buffers only checksummed, and every error the
 * whole-file read gives — corrupted, truncated, a model of another shape — the same one line.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/index.js';
import { createLanguageModel, type LanguageModel } from '../../src/models/language-model.js';
import type { ModelConfig } from '../../src/models/config.js';
import { tensor } from '../../src/tensor/creation.js';
import { quantizeModel, type QuantizeStats } from '../../src/models/quantize.js';
import { TransformerLM } from '../../src/models/transformer.js';
import { QuantizedLinear } from '../../src/nn/quantized.js';
import { checkCheckpointFitsModel, readCheckpoint, type CheckpointInfo } from '../../src/train/checkpoint.js';
import { loadRun, type RunConfig } from '../../src/train/trainer.js';
import { trainSmallRun } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'tensorlm-ckpt-streaming-'));
let base = '';
let copies = 0;

function runCopy(): { dir: string; latest: string } {
  const dir = join(root, `run-${copies++}`);
  cpSync(base, dir, { recursive: true });
  return { dir, latest: join(dir, 'latest.safetensors') };
}

const build = (c: CheckpointInfo): LanguageModel => createLanguageModel((c.meta.config as RunConfig).model);

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('no error was thrown');
}

/** The header of a checkpoint rewritten by `edit`; `resign` recomputes fileSha256 as a writer would. */
function rewrite(path: string, edit: (header: Record<string, { dtype: string; shape: number[] }> & { __metadata__: Record<string, string> }) => void, resign = false): void {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  if (resign) header.__metadata__.fileSha256 = '0'.repeat(64);
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(h.length));
  const out = Buffer.concat([prefix, h, bytes.subarray(8 + n)]);
  if (resign) {
    const digest = createHash('sha256').update(out).digest('hex');
    out.write(digest, out.indexOf(`"fileSha256":"${'0'.repeat(64)}"`) + '"fileSha256":"'.length, 'latin1');
  }
  writeFileSync(path, out);
}

beforeAll(async () => {
  base = await trainSmallRun(root);
}, 60_000);

describe('readCheckpoint with a model', () => {
  it('reads the same weights as the whole-file read, into the model it builds', () => {
    const run = runCopy();
    const whole = readCheckpoint(run.latest);
    const streamed = readCheckpoint(run.latest, { model: build, optimizer: true });
    const own = streamed.model.stateDict();
    expect(Object.keys(own).sort()).toEqual(Object.keys(whole.modelState).sort());
    for (const [name, t] of Object.entries(whole.modelState)) {
      expect(Array.from(own[name].toTypedArray()), name).toEqual(Array.from(t.toTypedArray()));
      // modelState is the model's own tensors: nothing was copied beside them.
      expect(streamed.modelState[name].storage).toBe(own[name].storage);
    }
    // The optimizer's buffers, when asked for, are the same too.
    expect(streamed.optimizerState).toEqual(whole.optimizerState);
    expect(streamed.meta).toEqual(whole.meta);
    expect(streamed.aliases).toEqual(whole.aliases);
    expect(streamed.tokenizer).toEqual(whole.tokenizer);
  });

  it('optimizer: false drops the buffers (checksummed) and keeps the scalars', () => {
    const run = runCopy();
    const whole = readCheckpoint(run.latest);
    const light = readCheckpoint(run.latest, { optimizer: false });
    const buffers = (state: typeof whole.optimizerState) => Object.values(state.state).flatMap((e) => Object.values(e).filter((v) => v instanceof Float32Array));
    expect(buffers(whole.optimizerState).length).toBeGreaterThan(0);
    expect(buffers(light.optimizerState)).toEqual([]);
    expect(light.optimizerState.paramGroups).toEqual(whole.optimizerState.paramGroups);
    expect(Object.keys(light.modelState).sort()).toEqual(Object.keys(whole.modelState).sort());
  });

  it('loadRun (the weights read straight into the model) holds the whole-file read’s weights, and generates from them', () => {
    const run = runCopy();
    const loaded = loadRun(run.dir, 'latest');
    const whole = readCheckpoint(run.latest);
    const state = loaded.model.stateDict();
    for (const [name, t] of Object.entries(whole.modelState)) expect(Array.from(state[name].toTypedArray()), name).toEqual(Array.from(t.toTypedArray()));
    const reference = createLanguageModel((whole.meta.config as RunConfig).model);
    reference.loadStateDict(whole.modelState);
    reference.eval();
    const ids = tensor(Int32Array.from([1, 2, 3]), { shape: [1, 3] });
    expect(Array.from(loaded.model.generate(ids, { maxNewTokens: 8, temperature: 0 }).toTypedArray())).toEqual(Array.from(reference.generate(ids, { maxNewTokens: 8, temperature: 0 }).toTypedArray()));
    expect(loaded.model.training).toBe(false);
    expect(() => loadRun(join(root, 'nowhere'))).toThrow(/is not a run directory \(no config\.json\)/);
  });
});

describe('loadRun with quantize (each layer quantized as its weight arrives)', () => {
  it.each(['int8', 'q8_0'] as const)('%s: the codes, scales, statistics and greedy tokens of loadRun then quantizeModel', (format) => {
    const run = runCopy();
    const streamed = loadRun(run.dir, 'latest', { quantize: format });
    const plain = loadRun(run.dir, 'latest');
    const stats = quantizeModel(plain.model as TransformerLM, format);
    const layers = (m: TransformerLM) => m.modules().filter((x): x is QuantizedLinear => x instanceof QuantizedLinear);
    const a = layers(streamed.model as TransformerLM);
    const b = layers(plain.model as TransformerLM);
    expect(a.length).toBe(b.length);
    expect(a.length).toBeGreaterThan(0);
    for (let i = 0; i < a.length; i++) {
      expect(Array.from(a[i].q)).toEqual(Array.from(b[i].q));
      expect(Array.from(a[i].scales)).toEqual(Array.from(b[i].scales));
    }
    const byName = (s: QuantizeStats) => Object.fromEntries(s.layers.map((l) => [l.name, l]));
    expect(byName(streamed.quantization as QuantizeStats)).toEqual(byName(stats));
    expect(streamed.quantization?.bytesAfter).toBe(stats.bytesAfter);
    const ids = tensor(Int32Array.from([1, 2, 3]), { shape: [1, 3] });
    expect(Array.from(streamed.model.generate(ids, { maxNewTokens: 8, temperature: 0 }).toTypedArray())).toEqual(Array.from(plain.model.generate(ids, { maxNewTokens: 8, temperature: 0 }).toTypedArray()));
    expect(plain.quantization).toBeNull();
  });
});

describe('the same errors as the whole-file read', () => {
  const same = (path: string, fn: () => unknown): string => {
    const expected = messageOf(() => readCheckpoint(path));
    expect(messageOf(fn)).toBe(expected);
    expect(expected).not.toContain('\n');
    return expected;
  };

  it('a flipped tensor byte: corrupted (the model’s contents are then undefined)', () => {
    const run = runCopy();
    const bytes = readFileSync(run.latest);
    bytes[bytes.length - 3] ^= 0x40;
    writeFileSync(run.latest, bytes);
    expect(same(run.latest, () => readCheckpoint(run.latest, { model: build, optimizer: false }))).toMatch(/is corrupted: its content does not match the checksum \(fileSha256\)/);
    // A weight, not an optimizer buffer: the first tensor's first bytes.
    const run2 = runCopy();
    const bytes2 = readFileSync(run2.latest);
    bytes2[8 + Number(bytes2.readBigUInt64LE(0)) + 1] ^= 0x40;
    writeFileSync(run2.latest, bytes2);
    expect(same(run2.latest, () => loadRun(run2.dir, 'latest'))).toMatch(/is corrupted/);
  });

  it('an edited metadata field that a check refuses is still reported as corrupted when the checksum does not match', () => {
    const run = runCopy();
    rewrite(run.latest, (h) => (h.__metadata__.meta = h.__metadata__.meta.replace('"step":10', '"step":-5')));
    expect(same(run.latest, () => readCheckpoint(run.latest, { model: build, optimizer: false }))).toMatch(/is corrupted/);
    const run2 = runCopy();
    rewrite(run2.latest, (h) => (h.__metadata__.meta = h.__metadata__.meta.replace('"step":10', '"step":5')));
    expect(same(run2.latest, () => readCheckpoint(run2.latest, { model: build }))).toMatch(/is corrupted/);
  });

  it('with a valid checksum, the schema’s own message', () => {
    const run = runCopy();
    rewrite(run.latest, (h) => (h.__metadata__.meta = h.__metadata__.meta.replace('"step":10', '"step":-5')), true);
    expect(same(run.latest, () => readCheckpoint(run.latest, { model: build, optimizer: false }))).toMatch(/meta\.step must be an integer ≥ 0, got -5/);
  });

  it('a truncated file', () => {
    const run = runCopy();
    const bytes = readFileSync(run.latest);
    writeFileSync(run.latest, bytes.subarray(0, bytes.length - 100));
    expect(same(run.latest, () => readCheckpoint(run.latest, { model: build, optimizer: false }))).toMatch(/is unreadable or truncated: tensor ".+" has data_offsets \[\d+, \d+\] beyond the data section/);
  });

  it('a model of another shape: checkCheckpointFitsModel’s one line, before any tensor is read', () => {
    const run = runCopy();
    const whole = readCheckpoint(run.latest);
    const config = (whole.meta.config as RunConfig).model as ModelConfig & { dFF: number };
    const wider = () => createLanguageModel({ ...config, dFF: config.dFF * 2 });
    const expected = messageOf(() => checkCheckpointFitsModel(wider(), whole, run.latest));
    expect(expected).toMatch(/tensor "layers\.0\.ffn\.\w+\.weight" has shape \[\d+, \d+\], the model's is \[\d+, \d+\]/);
    expect(messageOf(() => readCheckpoint(run.latest, { model: wider, optimizer: false }))).toBe(expected);
  });
});
