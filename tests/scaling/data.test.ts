/** Loading runs from CSV: column detection, derived D or C, the sweep format, dropping, and errors. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRunsCsv, parseRunsCsv } from '../../src/scaling/data.js';

describe('parseRunsCsv', () => {
  it("reads Epoch AI's Chinchilla layout: 'Model Size', 'Training FLOP', 'loss'; D = C/(6N)", () => {
    const csv = 'x,y,color,Model Size,Training FLOP,hex_color,loss\n1,2,#fff,1e8,6e18,#fff,3.25\n1,2,#fff,2e8,1.2e19,#fff,3.0\n';
    const t = parseRunsCsv(csv);
    expect(t.columns).toEqual({ N: 'Model Size', D: null, C: 'Training FLOP', loss: 'loss' });
    expect(t.derived).toBe('D');
    expect(t.format).toBe('csv');
    expect(t.runs).toEqual([
      { N: 1e8, D: 6e18 / 6e8, C: 6e18, loss: 3.25, line: 2 },
      { N: 2e8, D: 1.2e19 / 1.2e9, C: 1.2e19, loss: 3.0, line: 3 },
    ]);
  });

  it('derives C = 6ND when only tokens are given, and matches names loosely', () => {
    const t = parseRunsCsv('params,Tokens,Final_Loss\n1000000,20000000,4.5\n');
    expect(t.columns).toEqual({ N: 'params', D: 'Tokens', C: null, loss: 'Final_Loss' });
    expect(t.derived).toBe('C');
    expect(t.runs[0].C).toBe(6 * 1e6 * 2e7);
  });

  it('recognises the tensorlm sweep format and fits on N (without embeddings) by default', () => {
    const csv = 'N,N_with_embeddings,D,C,loss\n1000,1500,20000,1.5e8,3.5\n2000,2500,40000,5e8,3.1\n';
    const t = parseRunsCsv(csv);
    expect(t.format).toBe('tensorlm-sweep');
    expect(t.columns).toEqual({ N: 'N', D: 'D', C: 'C', loss: 'loss' });
    expect(t.derived).toBeNull();
    // C is taken as written, not recomputed.
    expect(t.runs.map((r) => [r.N, r.D, r.C, r.loss])).toEqual([
      [1000, 20000, 1.5e8, 3.5],
      [2000, 40000, 5e8, 3.1],
    ]);
    const withEmbeddings = parseRunsCsv(csv, { nColumn: 'N_with_embeddings' });
    expect(withEmbeddings.runs.map((r) => r.N)).toEqual([1500, 2500]);
  });

  it('uses explicit columns over detection, and drops the k highest-loss runs', () => {
    const csv = 'size,toks,val,loss\n1e6,1e8,3.0,9\n2e6,1e8,2.8,9\n3e6,1e8,3.3,9\n4e6,1e8,2.5,9\n';
    const t = parseRunsCsv(csv, { nColumn: 'size', dColumn: 'toks', lossColumn: 'val', dropHighest: 2 });
    expect(t.runs.map((r) => r.loss)).toEqual([2.8, 2.5]);
    expect(t.dropped.map((r) => [r.loss, r.line])).toEqual([
      [3.3, 4],
      [3.0, 2],
    ]);
  });

  it('skips blank lines and a byte-order mark; line numbers stay those of the file', () => {
    const t = parseRunsCsv('\uFEFFN,D,loss\n\n1e6,1e8,3\n\n2e6,1e8,2.9\n');
    expect(t.runs.map((r) => r.line)).toEqual([3, 5]);
  });

  it('errors name the column, the line and what was expected', () => {
    expect(() => parseRunsCsv('N,D,loss\n1e6,1e8,3\n1e6,abc,3\n', {}, 'runs.csv')).toThrow("runs.csv line 3: column 'D' (training tokens D) must be a positive number, got 'abc'");
    expect(() => parseRunsCsv('N,D,loss\n1e6,1e8,\n')).toThrow(/column 'loss' \(loss\) must be a positive number, got an empty cell/);
    expect(() => parseRunsCsv('N,D,loss\n-5,1e8,3\n')).toThrow(/line 2: column 'N' .* must be a finite positive number, got -5/);
    expect(() => parseRunsCsv('N,D,loss\n1e6,1e8,0\n')).toThrow(/column 'loss' .* got 0/);
    expect(() => parseRunsCsv('N,D,loss\n1e6,1e8,1e999\n')).toThrow(/finite positive number, got 1e999/);
    expect(() => parseRunsCsv('N,D,loss\n0x10,1e8,3\n')).toThrow(/must be a positive number, got '0x10'/);
  });

  it('errors on missing, ambiguous or doubly used columns', () => {
    expect(() => parseRunsCsv('N,D,perplexity\n1,2,3\n')).toThrow(/no loss column found .*its columns are 'N', 'D', 'perplexity'.*lossColumn \/ --loss-col/);
    expect(() => parseRunsCsv('N,loss\n1,2\n')).toThrow(/need a training-tokens \(D\) or a training-FLOPs \(C\) column/);
    expect(() => parseRunsCsv('N,params,D,loss\n1,2,3,4\n')).toThrow(/several columns could be the parameter count N: 'N', 'params'; choose one with nColumn \/ --n-col/);
    expect(() => parseRunsCsv('N,D,loss\n1,2,3\n', { nColumn: 'size' })).toThrow(/the parameter count N column 'size' \(nColumn \/ --n-col\) is not in the CSV; its columns are 'N', 'D', 'loss'/);
    expect(() => parseRunsCsv('N,D,loss\n1,2,3\n', { dColumn: 'N' })).toThrow(/one column was chosen for two roles/);
    expect(() => parseRunsCsv('N,N,D,loss\n1,2,3,4\n')).toThrow(/names column 'N' twice/);
  });

  it('errors on empty input, a header without runs, ragged rows and over-dropping', () => {
    expect(() => parseRunsCsv('')).toThrow(/is empty: expected a header row/);
    expect(() => parseRunsCsv('N,D,loss\n')).toThrow(/has a header but no runs/);
    expect(() => parseRunsCsv('N,D,loss\n1,2,3\n1,2\n')).toThrow(/cannot parse CSV: .*line 3/);
    expect(() => parseRunsCsv('N,D,loss\n1,2,3\n', { dropHighest: 1 })).toThrow(/dropHighest=1 would drop all 1 runs/);
    expect(() => parseRunsCsv('N,D,loss\n1,2,3\n', { dropHighest: -1 })).toThrow(/dropHighest must be a non-negative integer/);
  });
});

describe('loadRunsCsv', () => {
  it('reads a file and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-scaling-data-'));
    const path = join(dir, 'runs.csv');
    writeFileSync(path, 'N,D,loss\n1e6,1e8,3\n1e6,1e8,oops\n');
    expect(() => loadRunsCsv(path)).toThrow(`${path} line 3: column 'loss'`);
    writeFileSync(path, 'N,D,loss\n1e6,1e8,3\n');
    expect(loadRunsCsv(path).source).toBe(path);
    expect(() => loadRunsCsv(join(dir, 'missing.csv'))).toThrow(/cannot read runs CSV .*missing\.csv: no such file/);
  });
});
