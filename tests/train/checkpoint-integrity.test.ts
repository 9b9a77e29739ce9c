/**
 * Integrity of what a run directory loads (issue #20, items 1, 4 and 5): the checkpoint's checksum
 * covers the whole file, its metadata is validated with bounds before a model is built from it,
 * the tokenizer is bound to the checkpoint, and every error is one short line naming the file.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/index.js';
import { MAX_MODEL_PARAMETERS, readCheckpoint } from '../../src/train/checkpoint.js';
import { readTrainConfigFile } from '../../src/train/config.js';
import { loadRun, train } from '../../src/train/trainer.js';
import { trainSmallRun } from './helpers.js';
import { fileErrorOf } from '../helpers/errors.js';

const root = mkdtempSync(join(tmpdir(), 'tensorlm-ckpt-integrity-'));
let base = '';
let copies = 0;

/** A fresh copy of the trained run directory. */
function runCopy(): { dir: string; latest: string; best: string; tokenizer: string } {
  const dir = join(root, `run-${copies++}`);
  cpSync(base, dir, { recursive: true });
  return { dir, latest: join(dir, 'latest.safetensors'), best: join(dir, 'best.safetensors'), tokenizer: join(dir, 'tokenizer.json') };
}

interface Parsed {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__: Record<string, string> };
  data: Uint8Array;
}

function parse(path: string): Parsed {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

function encode(header: object, data: Uint8Array): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([prefix, h, data]);
}

/**
 * Edits a checkpoint's header. `resign` recomputes fileSha256 as a writer would (what a
 * deliberate edit does), so the edit reaches the schema checks behind the checksum.
 */
function rewrite(path: string, edit: (p: Parsed) => void, resign = false): void {
  const p = parse(path);
  edit(p);
  if (resign) {
    p.header.__metadata__.fileSha256 = '0'.repeat(64);
    const bytes = encode(p.header, p.data);
    const digest = createHash('sha256').update(bytes).digest('hex');
    const at = bytes.indexOf(`"fileSha256":"${'0'.repeat(64)}"`) + '"fileSha256":"'.length;
    bytes.write(digest, at, 'latin1');
    writeFileSync(path, bytes);
  } else writeFileSync(path, encode(p.header, p.data));
}

function editMeta(path: string, edit: (meta: Record<string, unknown>) => void, resign = true): void {
  rewrite(
    path,
    (p) => {
      const meta = JSON.parse(p.header.__metadata__.meta);
      edit(meta);
      p.header.__metadata__.meta = JSON.stringify(meta);
    },
    resign,
  );
}

const errorOf = fileErrorOf;

async function asyncErrorOf(fn: () => Promise<unknown>, file: string): Promise<string> {
  let message = '';
  try {
    await fn();
  } catch (error) {
    message = (error as Error).message;
  }
  return errorOf(() => {
    if (message) throw new Error(message);
  }, file);
}

beforeAll(async () => {
  base = await trainSmallRun(root);
}, 60_000);

describe('the checksum covers the whole file', () => {
  it('an edit of any metadata is caught: step, lr, a dtype relabelled F32→I32, aliases, the tokenizer record', () => {
    const edits: ((p: Parsed) => void)[] = [
      (p) => (p.header.__metadata__.meta = p.header.__metadata__.meta.replace('"step":10', '"step":5')),
      (p) => (p.header.__metadata__.optimizer = p.header.__metadata__.optimizer.replace(/"lr":[0-9.e-]+/, '"lr":0.5')),
      (p) => (p.header['tokEmb.weight'].dtype = 'I32'),
      (p) => (p.header.__metadata__.aliases = '{"head.weight":"posEmb.weight"}'),
      (p) => (p.header.__metadata__.tokenizer = 'null'),
    ];
    for (const edit of edits) {
      const run = runCopy();
      const before = readFileSync(run.latest);
      rewrite(run.latest, edit);
      expect(readFileSync(run.latest).equals(before)).toBe(false);
      expect(errorOf(() => readCheckpoint(run.latest), run.latest)).toMatch(/is corrupted: its content does not match the checksum \(fileSha256\)/);
    }
  });

  it('a flipped tensor byte is caught, and an intact checkpoint loads', () => {
    const run = runCopy();
    expect(readCheckpoint(run.latest).version).toBe(2);
    const bytes = readFileSync(run.latest);
    bytes[bytes.length - 3] ^= 0x40;
    writeFileSync(run.latest, bytes);
    expect(errorOf(() => readCheckpoint(run.latest), run.latest)).toMatch(/is corrupted/);
  });

  it('a checkpoint of the previous format (tensorlm-checkpoint/1) still loads under its data checksum', () => {
    const run = runCopy();
    const { tensors } = (() => {
      const c = readCheckpoint(run.best);
      return { tensors: c };
    })();
    expect(tensors.tokenizer).not.toBeNull();
    rewrite(run.best, (p) => {
      const m = p.header.__metadata__;
      // The /1 checksum: SHA-256 over tensor names (sorted) and their bytes.
      const hash = createHash('sha256');
      for (const name of Object.keys(p.header).filter((k) => k !== '__metadata__').sort()) {
        const [b, e] = p.header[name].data_offsets;
        hash.update(name);
        hash.update(p.data.subarray(b, e));
      }
      p.header.__metadata__ = { format: 'tensorlm-checkpoint/1', meta: m.meta, optimizer: m.optimizer, aliases: m.aliases, dataSha256: hash.digest('hex') };
    });
    const old = readCheckpoint(run.best);
    expect(old.version).toBe(1);
    expect(old.tokenizer).toBeNull();
    expect(loadRun(run.dir, 'best').model.numParameters()).toBeGreaterThan(0);
    const bytes = readFileSync(run.best);
    bytes[bytes.length - 3] ^= 0x40;
    writeFileSync(run.best, bytes);
    expect(errorOf(() => readCheckpoint(run.best), run.best)).toMatch(/is corrupted: its data does not match/);
  });
});

describe('the metadata is validated before anything is built from it', () => {
  it('step −5 or past the planned steps, and other out-of-bounds fields, are refused with the field named', () => {
    const cases: [(m: Record<string, unknown>) => void, RegExp][] = [
      [(m) => (m.step = -5), /meta\.step must be an integer ≥ 0, got -5/],
      [(m) => (m.step = 1e9), /meta\.step 1000000000 is past meta\.plannedSteps 10/],
      [(m) => (m.step = 2.5), /meta\.step must be an integer ≥ 0, got 2\.5/],
      [(m) => (m.tokensSeen = '640'), /meta\.tokensSeen must be an integer ≥ 0, got the string "640"/],
      [(m) => (m.elapsedSeconds = -1), /meta\.elapsedSeconds must be a finite number ≥ 0, got -1/],
      [(m) => (m.bestValLoss = 'low'), /meta\.bestValLoss must be a finite number ≥ 0, got the string "low"/],
      [(m) => delete m.rng, /meta is missing 'rng'/],
      [(m) => ((m.rng as { data: { s: number[] } }).data.s = [1, 2, 3]), /meta\.rng\.data\.s must be four integers in \[0, 2\^32\), got an array of 3 items/],
      [(m) => (m.config = null), /meta\.config must be a JSON object, got null/],
      [(m) => ((m.config as Record<string, unknown>).model = { dModel: 32 }), /meta\.config\.model: vocabSize must be a positive integer/],
      [(m) => ((m.config as { model: Record<string, unknown> }).model.nLayers = 1e9), /meta\.config\.model\.nLayers must be at most 1,024 \(MODEL_CONFIG_LIMITS\), got 1000000000/],
      [(m) => ((m.config as { model: Record<string, unknown> }).model.dModel = 3000), /meta\.config\.model describes [\d,]+ parameters but the file holds [\d,]+ model weights/],
      [(m) => ((m.config as { model: Record<string, unknown> }).model.vocabSize = 10), /describes [\d,]+ parameters but the file holds/],
      [
        (m) => {
          for (let i = 0; i < 1000; i++) m[`extra${i}`] = i;
        },
        /meta has unknown keys "extra0", "extra1", "extra2" … and 997 more \(known: step, /,
      ],
    ];
    for (const [edit, expected] of cases) {
      const run = runCopy();
      editMeta(run.latest, edit);
      const t = performance.now();
      expect(errorOf(() => readCheckpoint(run.latest), run.latest)).toMatch(expected);
      expect(errorOf(() => loadRun(run.dir, 'latest'), run.latest)).toMatch(expected);
      expect(performance.now() - t).toBeLessThan(2000);
    }
  });

  it('a config describing a huge model is refused before allocation, naming the parameter count and the limit', () => {
    const run = runCopy();
    editMeta(run.latest, (m) => Object.assign((m.config as { model: object }).model, { dModel: 65_536, nLayers: 1_024, nHeads: 64, dFF: 262_144 }));
    const t = performance.now();
    const message = errorOf(() => loadRun(run.dir, 'latest'), run.latest);
    expect(message).toMatch(/meta\.config\.model describes [\d,]+ parameters, more than the limit of 8,000,000,000 \(MAX_MODEL_PARAMETERS\)/);
    expect(performance.now() - t).toBeLessThan(1000);
    // Under the parameter limit but more than this machine's memory (or, on a large machine, more than the file holds).
    const run2 = runCopy();
    editMeta(run2.latest, (m) => Object.assign((m.config as { model: object }).model, { vocabSize: 1_000_000, dModel: 6_144, nLayers: 2, nHeads: 2, dFF: 1 }));
    expect(errorOf(() => loadRun(run2.dir, 'latest'), run2.latest)).toMatch(/describes [\d,]+ parameters \([\d.]+ GB of float32\), more than the [\d.]+ GB of free memory|describes [\d,]+ parameters but the file holds/);
    expect(MAX_MODEL_PARAMETERS).toBe(8e9);
  });

  it('a dtype relabelled F32→I32, an alias pointing the embedding elsewhere, an edited lr: refused even with a valid checksum', () => {
    const relabel = runCopy();
    rewrite(relabel.latest, (p) => (p.header['tokEmb.weight'].dtype = 'I32'), true);
    expect(errorOf(() => loadRun(relabel.dir, 'latest'), relabel.latest)).toMatch(/tensor "tokEmb\.weight" has dtype I32, expected F32/);

    const alias = runCopy();
    rewrite(alias.latest, (p) => (p.header.__metadata__.aliases = '{"tokEmb.weight":"posEmb.weight"}'), true);
    expect(errorOf(() => loadRun(alias.dir, 'latest'), alias.latest)).toMatch(/aliases\["tokEmb\.weight"\]: the file also stores a tensor "tokEmb\.weight"/);
    const dangling = runCopy();
    rewrite(dangling.latest, (p) => (p.header.__metadata__.aliases = '{"head.weight":"nothing"}'), true);
    expect(errorOf(() => loadRun(dangling.dir, 'latest'), dangling.latest)).toMatch(/aliases\["head\.weight"\] names "nothing", which is not a model tensor in the file/);
    const untied = runCopy();
    rewrite(untied.latest, (p) => (p.header.__metadata__.aliases = '{"head.weight":"tokEmb.weight"}'), true);
    expect(errorOf(() => loadRun(untied.dir, 'latest'), untied.latest)).toMatch(/does not fit the model its config describes: unexpected "head\.weight"/);

    const lr = runCopy();
    rewrite(lr.latest, (p) => (p.header.__metadata__.optimizer = p.header.__metadata__.optimizer.replace(/"lr":[0-9.e-]+/, '"lr":-1')), true);
    expect(errorOf(() => readCheckpoint(lr.latest), lr.latest)).toMatch(/optimizer\.paramGroups\[0\]\."lr" must be a finite number ≥ 0, got -1/);
  });

  it('unparseable, null, deep or unknown metadata gives a short line naming the file and the field', () => {
    const cases: [(p: Parsed) => void, RegExp][] = [
      [(p) => (p.header.__metadata__.meta = 'undefined'), /metadata 'meta': invalid JSON \(/],
      [(p) => (p.header.__metadata__.meta = 'null'), /meta must be a JSON object, got null/],
      [(p) => (p.header.__metadata__.meta = '['.repeat(100_000) + ']'.repeat(100_000)), /metadata 'meta': invalid JSON: it is nested deeper than 64 levels/],
      [(p) => (p.header.__metadata__.optimizer = '{"state":{},"paramGroups":null}'), /optimizer\.paramGroups must be an array, got null/],
      [(p) => delete (p.header.__metadata__ as Partial<Record<string, string>>).format, /not a TensorLM checkpoint \(format missing/],
      [(p) => (p.header.__metadata__.extra = 'x'), /unknown metadata key "extra" \(known: format, meta/],
      [(p) => (p.header.__metadata__.tokenizer = '{"sha256":"abc","vocabSize":3}'), /tokenizer\.sha256 must be 64 lowercase hex digits, got the string "abc"/],
    ];
    for (const [edit, expected] of cases) {
      const run = runCopy();
      rewrite(run.latest, edit, true);
      expect(errorOf(() => readCheckpoint(run.latest), run.latest)).toMatch(expected);
    }
  });

  it('a truncated file or one that is not safetensors at all says so', () => {
    const run = runCopy();
    const bytes = readFileSync(run.latest);
    writeFileSync(run.latest, bytes.subarray(0, bytes.length - 100));
    expect(errorOf(() => readCheckpoint(run.latest), run.latest)).toMatch(/is unreadable or truncated: tensor ".+" has data_offsets \[\d+, \d+\] beyond the data section/);
    writeFileSync(run.latest, 'undefined');
    expect(errorOf(() => readCheckpoint(run.latest), run.latest)).toMatch(/is unreadable or truncated: .*header length/);
  });
});

describe('the tokenizer is bound to its checkpoint', () => {
  it('swapping two characters in tokenizer.json is refused by loadRun and by resume, naming both files', async () => {
    const run = runCopy();
    expect(loadRun(run.dir, 'latest').tokenizer.vocabSize).toBeGreaterThan(0);
    const json = JSON.parse(readFileSync(run.tokenizer, 'utf8')) as { chars: string[] };
    const e = json.chars.indexOf('e');
    const g = json.chars.indexOf('g');
    [json.chars[e], json.chars[g]] = [json.chars[g], json.chars[e]];
    writeFileSync(run.tokenizer, JSON.stringify(json));
    const message = errorOf(() => loadRun(run.dir, 'best'), run.best);
    expect(message).toContain(run.tokenizer);
    expect(message).toMatch(/does not belong to checkpoint .*: its SHA-256 is [0-9a-f]{12}…, the checkpoint was trained with [0-9a-f]{12}…/);
    const resumed = await asyncErrorOf(() => train({ outDir: join(run.dir, '..'), name: run.dir.split('/').pop() }, { resume: true }), run.latest);
    expect(resumed).toContain(run.tokenizer);
    // A tokenizer of another size: named by its vocabulary.
    json.chars.push('Z');
    writeFileSync(run.tokenizer, JSON.stringify(json));
    expect(errorOf(() => loadRun(run.dir, 'best'), run.best)).toMatch(/has \d+ tokens, the checkpoint was trained with \d+/);
  });
});

describe('the resume config check', () => {
  it('an edited training config in the checkpoint gives one line naming the file and the field', async () => {
    const run = runCopy();
    const name = run.dir.split('/').pop();
    editMeta(run.latest, (m) => ((m.config as { train: Record<string, unknown> }).train.lr = 'fast'));
    expect(await asyncErrorOf(() => train({ outDir: join(run.dir, '..'), name }, { resume: true }), run.latest)).toMatch(/meta\.config\.train: lr must be a number, got the string "fast"/);
    const run2 = runCopy();
    editMeta(run2.latest, (m) => ((m.config as { train: Record<string, unknown> }).train['x'.repeat(5000)] = 1));
    expect(await asyncErrorOf(() => train({ outDir: join(run2.dir, '..'), name: run2.dir.split('/').pop() }, { resume: true }), run2.latest)).toMatch(/meta\.config\.train: unknown train config key "x{40}"… \(known: name, outDir, .* … and \d+ more\)/);
    const run3 = runCopy();
    editMeta(run3.latest, (m) => ((m.config as { train: Record<string, unknown> }).train.data = null));
    expect(await asyncErrorOf(() => train({ outDir: join(run3.dir, '..'), name: run3.dir.split('/').pop() }, { resume: true }), run3.latest)).toMatch(/meta\.config\.train: data must be a non-empty string, got null/);
  });

  it('a training config file may start with a UTF-8 BOM, and may be a run’s config.json', () => {
    const run = runCopy();
    const config = join(run.dir, 'config.json');
    writeFileSync(config, '\ufeff' + readFileSync(config, 'utf8'));
    const read = readTrainConfigFile(config);
    expect(read.batchSize).toBe(4);
    expect(read.maxTime).toBeNull();
    const plain = join(root, 'plain.json');
    writeFileSync(plain, '\ufeff{"lr": 0.01, "maxTime": "2m"}');
    expect(readTrainConfigFile(plain)).toEqual({ lr: 0.01, maxTime: 120 });
    writeFileSync(plain, 'undefined');
    expect(errorOf(() => readTrainConfigFile(plain), plain)).toMatch(/^config file .*plain\.json: invalid JSON \(/);
    expect(errorOf(() => readTrainConfigFile(join(root, 'none.json')), 'none.json')).toMatch(/does not exist/);
    // A run directory whose config.json starts with a BOM still loads.
    expect(loadRun(run.dir).model.numParameters()).toBeGreaterThan(0);
  });
});
