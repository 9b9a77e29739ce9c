/** The μTransfer sweep: records, divergence, resuming, optimum finding, the CLI's parsers and plots. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLrs, parseParametrizations, parseWidths } from '../../src/cli/commands/mup.js';
import { coordCheck } from '../../src/mup/coord-check.js';
import { coordCheckSpec, transferSpec } from '../../src/mup/plots.js';
import { muTransfer, readTransferResults, transferOptima, type TransferRecord } from '../../src/mup/transfer.js';
import { renderSvg } from '../../src/train/plot.js';

function corpus(dir: string): string {
  const path = join(dir, 'corpus.txt');
  const words = ['love', 'night', 'light', 'death', 'sweet', 'fair', 'moon', 'sun'];
  writeFileSync(path, Array.from({ length: 200 }, (_, i) => `${words[i % 8]} ${words[(i * 3) % 8]} ${words[(i * 5) % 8]}.`).join('\n'));
  return path;
}

describe('muTransfer', () => {
  it('runs the grid, flags blow-ups, writes results incrementally and resumes by skipping', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-mutransfer-'));
    const out = join(dir, 'sweep');
    const options = { outDir: out, data: corpus(dir), widths: [16, 32], lrs: [2 ** -8, 2 ** -6, 2 ** 4], seeds: 1, steps: 6, lossWindow: 3, batchSize: 4, blockSize: 16, nHeads: 2, evalIters: 1 };
    const seen: TransferRecord[] = [];
    const records = await muTransfer({ ...options, onResult: (r) => seen.push(r) });
    expect(records.length).toBe(12);
    expect(seen.length).toBe(12);
    expect(readTransferResults(out)).toEqual(records);
    expect(readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n').length).toBe(13);
    // the base width (16): μP is SP
    const at = (p: string, w: number, lr: number) => records.find((r) => r.parametrization === p && r.width === w && r.lr === lr) as TransferRecord;
    expect(at('mup', 16, 2 ** -6).finalTrainLoss).toBe(at('sp', 16, 2 ** -6).finalTrainLoss);
    expect(at('mup', 32, 2 ** -6).finalTrainLoss).not.toBe(at('sp', 32, 2 ** -6).finalTrainLoss);
    // lr 16 blows up: flagged, and no optimum lands there
    expect(records.filter((r) => r.lr === 16).every((r) => r.diverged)).toBe(true);
    expect(records.filter((r) => r.lr < 1).every((r) => !r.diverged && (r.finalTrainLoss as number) < (r.initialLoss as number))).toBe(true);
    expect(transferOptima(records).every((o) => o.bestLog2Lr !== null && o.bestLog2Lr < 0)).toBe(true);
    // only config, tokenizer and metrics stay of each run
    for (const run of readdirSync(join(out, 'runs'))) expect(readdirSync(join(out, 'runs', run)).some((f) => f.endsWith('.safetensors'))).toBe(false);

    // resuming: nothing runs again; a changed setting runs again
    const again: TransferRecord[] = [];
    expect(await muTransfer({ ...options, onResult: (r) => again.push(r) })).toEqual(records);
    expect(again.length).toBe(0);
    // a cut-short last line (an interrupted write) is ignored
    writeFileSync(join(out, 'results.jsonl'), readFileSync(join(out, 'results.jsonl'), 'utf8') + '{"parametrization":"sp","wid');
    expect(readTransferResults(out).length).toBe(12);
    const changed = await muTransfer({ ...options, steps: 7, widths: [16], lrs: [2 ** -8], parametrizations: ['sp'], onResult: (r) => again.push(r) });
    expect(again.length).toBe(1);
    expect(changed[0].finalTrainLoss).not.toBe(at('sp', 16, 2 ** -8).finalTrainLoss);

    // the plot renders
    const svg = await renderSvg(transferSpec(records, { yMax: 4.2 }));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('μP');
  });

  it('validates its options', async () => {
    await expect(muTransfer({ outDir: '/tmp/x', widths: [30], nHeads: 4 })).rejects.toThrow(/width 30 is not divisible by nHeads 4/);
    await expect(muTransfer({ outDir: '/tmp/x', lrs: [-1] })).rejects.toThrow(/each lr must be a positive number/);
    await expect(muTransfer({ outDir: '/tmp/x', steps: 5, lossWindow: 10 })).rejects.toThrow(/lossWindow 10 is larger than steps 5/);
    expect(existsSync('/tmp/x/results.jsonl')).toBe(false);
  });

  it('finds the optimum on the grid and by a parabola through its neighbours', () => {
    const rec = (p: 'sp' | 'mup', width: number, log2Lr: number, loss: number | null, seed = 0): TransferRecord => ({
      parametrization: p,
      width,
      lr: 2 ** log2Lr,
      log2Lr,
      seed,
      initialLoss: 4.2,
      finalTrainLoss: loss,
      valLoss: loss,
      diverged: loss === null,
      divergedAtStep: null,
      seconds: 1,
      settings: '',
    });
    const records: TransferRecord[] = [];
    for (let k = -10; k <= -4; k++) {
      records.push(rec('mup', 64, k, (k + 7.3) ** 2 + 2));
      // two seeds, one diverged at the highest LR: that LR is out
      records.push(rec('sp', 64, k, k === -4 ? 0 : (k + 9) ** 2 + 1, 0), rec('sp', 64, k, k === -4 ? null : (k + 9) ** 2 + 1, 1));
    }
    const [mup, sp] = [transferOptima(records).find((o) => o.parametrization === 'mup'), transferOptima(records).find((o) => o.parametrization === 'sp')];
    expect(mup?.bestLog2Lr).toBe(-7);
    expect(mup?.interpolatedLog2Lr).toBeCloseTo(-7.3, 10);
    expect(sp?.bestLog2Lr).toBe(-9);
    expect(sp?.bestLoss).toBe(1);
    expect(sp?.interpolatedLog2Lr).toBeCloseTo(-9, 10);
  });
});

describe('mup CLI parsers and coordinate-check plots', () => {
  it('parses widths, LR grids and parametrizations, rejecting bad input', () => {
    expect(parseWidths('64,128, 256')).toEqual([64, 128, 256]);
    expect(() => parseWidths('64,,128')).toThrow(/comma-separated list of positive integers/);
    expect(() => parseWidths('64,64')).toThrow(/repeated/);
    expect(parseLrs('2^-14..2^-4').map(Math.log2)).toEqual([-14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4]);
    expect(parseLrs('2^-8..2^-7:0.5').map(Math.log2)).toEqual([-8, -7.5, -7]);
    expect(parseLrs('3e-3,1e-3,2^-6')).toEqual([1e-3, 3e-3, 2 ** -6]);
    expect(() => parseLrs('2^-4..2^-8')).toThrow(/from ≤ to/);
    expect(() => parseLrs('2^-8..2^-7:0.3')).toThrow(/not a multiple of the step/);
    expect(() => parseLrs('abc')).toThrow(/not a positive number or 2\^k/);
    expect(parseParametrizations('SP,μP')).toEqual(['sp', 'mup']);
    expect(() => parseParametrizations('sp,ntk')).toThrow(/'sp' and 'mup'/);
  });

  it('renders the coordinate-check plots', async () => {
    const r = coordCheck({ widths: [16, 32], steps: 1, nHeads: 2, blockSize: 8, batchSize: 2 });
    for (const spec of [coordCheckSpec(r), coordCheckSpec(r, { step: 'all' }), coordCheckSpec(r, { delta: true })]) {
      const svg = await renderSvg(spec);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('layers.1.ffn');
    }
  });
});
