/**
 * Scaling fits that used to fail silently or point at the wrong place (issue #20, item 9): a
 * design that cannot identify the exponents, non-finite values (read or derived) named by point
 * index instead of CSV line, and fitted exponents outside a sane range without a word.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { registerScalingCommands } from '../../src/cli/commands/scaling.js';
import { exponentWarnings, fitApproach3, predictLoss, type ScalingLaw } from '../../src/scaling/chinchilla.js';
import { MAX_RUNS, parseRunsCsv } from '../../src/scaling/data.js';
import { fitApproach2 } from '../../src/scaling/isoflop.js';
import { runScalingFit } from '../../src/scaling/report.js';

const LAW: ScalingLaw = { E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 };
const dir = mkdtempSync(join(tmpdir(), 'tensorlm-scaling-checks-'));

function csvFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerScalingCommands(program);
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => void out.push(parts.join(' ')));
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (err.push(String(chunk)), true));
  try {
    await program.parseAsync(['scaling', 'fit', ...args], { from: 'user' });
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
  return { stdout: out.join('\n'), stderr: err.join('') };
}

const SMALL_STARTS = [[5, 5, 0.5, 0.5, 0.5], [10, 10, 0, 0.3, 0.3], [0, 0, 0.5, 1, 1]];

describe('scaling fit input checks', () => {
  it('refuses a CSV of more than MAX_RUNS runs before parsing it (bounded work: 200,000 rows took over 5 s)', () => {
    const row = (i: number) => `${1e5 + i},${1e7 + i},${3 + 1 / (i + 1)}`;
    const text = ['N,D,loss', ...Array.from({ length: MAX_RUNS + 1 }, (_, i) => row(i))].join('\n');
    expect(() => parseRunsCsv(text, {}, 'big.csv')).toThrow('big.csv has more than 100,000 lines of runs; a runs CSV holds at most 100,000 (a scaling study has tens to thousands)');
    // A file under the cap loads.
    expect(parseRunsCsv(['N,D,loss', ...Array.from({ length: 1000 }, (_, i) => row(i))].join('\n'), {}, 'ok.csv').runs).toHaveLength(1000);
  });

  it('30 identical runs are an error naming the file and the missing design, not α = −0.07', () => {
    const same = csvFile('same.csv', `N,D,loss\n${'1000000,20000000,3.5\n'.repeat(30)}`);
    expect(() => runScalingFit({ csv: same, approach: '3', bootstrap: 0 })).toThrow(
      `${same}: scaling fit: the runs cannot identify the exponents: 1 distinct N (1.000e+6) where A and α need at least 3; 1 distinct D (2.000e+7) where B and β need at least 3. Add runs at more model sizes and token counts`,
    );
  });

  it('two distinct token counts cannot identify B and β; three can', () => {
    const grid = (Ds: number[]) => [1e7, 3e7, 1e8, 3e8].flatMap((N) => Ds.map((D) => ({ N, D, loss: predictLoss(LAW, N, D) })));
    expect(() => fitApproach3(grid([1e9, 1e10]), { starts: SMALL_STARTS })).toThrow(/2 distinct D \(1\.000e\+9, 1\.000e\+10\) where B and β need at least 3/);
    expect(() => fitApproach3(grid([1e9, 1e9 * (1 + 1e-12), 1e10]), { starts: SMALL_STARTS })).toThrow(/2 distinct D/);
    const fit = fitApproach3(grid([1e9, 1e10, 1e11]), { starts: SMALL_STARTS });
    expect(fit.warnings).toEqual([]);
  });

  it('non-finite or non-positive values, read or derived, are errors with the file and CSV line', () => {
    const inf = csvFile('inf.csv', 'N,D,loss\n1e6,1e9,3\n1e7,1e400,3\n');
    expect(() => runScalingFit({ csv: inf, bootstrap: 0 })).toThrow(`${inf} line 3: column 'D' (training tokens D) must be a finite positive number, got 1e400`);
    expect(() => parseRunsCsv('N,D,loss\n1e6,Infinity,3\n', {}, 'runs.csv')).toThrow("runs.csv line 2: column 'D' (training tokens D) must be a positive number, got 'Infinity'");
    // Derived from C ≈ 6ND: used to reach the fits as "point 0 has D = 0" / "run 0 has C = Infinity".
    expect(() => parseRunsCsv('N,C,loss\n1e6,1e20,3\n1e6,5e-324,3\n', {}, 'runs.csv')).toThrow('runs.csv line 3: D = C/(6N) = 0 is not a finite positive number (C = 5e-324, N = 1e6)');
    expect(() => parseRunsCsv('N,D,loss\n\n1e200,1e200,3\n', {}, 'runs.csv')).toThrow('runs.csv line 3: C = 6ND = Infinity is not a finite positive number (N = 1e200, D = 1e200)');
    // Runs from a CSV that reach the library fits directly still carry their line.
    const runs = parseRunsCsv(`N,D,loss\n${[1e7, 1e8, 1e9].flatMap((N) => [1e9, 1e10].map((D) => `${N},${D},3`)).join('\n')}\n`).runs;
    runs[4] = { ...runs[4], D: Infinity };
    expect(() => fitApproach3(runs)).toThrow(/scaling fit: point 4 \(CSV line 6\) has D = Infinity; expected a finite positive number/);
    expect(() => fitApproach2(runs)).toThrow(/isoflop: run 4 \(CSV line 6\) has D = Infinity/);
    expect(() => fitApproach3([{ N: 1, D: 1, loss: 1 }, { N: 1, D: -1, loss: 1 }, { N: 1, D: 1, loss: 1 }, { N: 1, D: 1, loss: 1 }, { N: 1, D: 1, loss: 1 }])).toThrow(/point 1 has D = -1/);
  });
});

describe('fitted exponents outside the sane range', () => {
  it('α ≤ 0 (loss rising with N) is a warning in the report, the CLI tables and the CLI JSON run', async () => {
    // Loss grows slowly with N; the D term is a clean power law.
    const rows = [1e6, 1e7, 1e8].flatMap((N) => [1e8, 1e9, 1e10].map((D) => `${N},${D},${2 + 0.0625 * Math.log10(N) + 400 / D ** 0.3}`));
    const csv = csvFile('rising.csv', `N,D,loss\n${rows.join('\n')}\n`);
    const { report } = runScalingFit({ csv, approach: '3', bootstrap: 0 });
    const a3 = report.approach3!;
    expect(a3.alpha).toBeLessThanOrEqual(0);
    expect(a3.warnings).toHaveLength(1);
    expect(a3.warnings[0]).toMatch(/^α = -?\d\.\d+(e-\d+)? ≤ 0: the fitted loss does not fall with more parameters N, so the law cannot be extrapolated/);

    const tables = await cli(['--csv', csv, '--approach', '3', '--bootstrap', '0']);
    expect(tables.stdout).toContain(`warning: ${a3.warnings[0]}`);
    const json = await cli(['--csv', csv, '--approach', '3', '--bootstrap', '0', '--json']);
    expect(JSON.parse(json.stdout).approach3.warnings).toEqual(a3.warnings);
    expect(json.stderr).toContain(`warning: ${a3.warnings[0]}`);
  }, 120_000);

  it('names both bounds; a sane law has no warning', () => {
    expect(exponentWarnings(LAW)).toEqual([]);
    expect(exponentWarnings({ alpha: 0.3, beta: -0.05 })).toEqual([expect.stringMatching(/^β = -0\.0500 ≤ 0: the fitted loss does not fall with more training tokens D/)]);
    expect(exponentWarnings({ alpha: 3.5, beta: 0 })).toEqual([expect.stringMatching(/^α = 3\.50 > 2: far steeper than published fits/), expect.stringMatching(/^β = 0\.00 ≤ 0/)]);
  });
});
