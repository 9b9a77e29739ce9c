/** `tensorlm scaling fit` in-process on small CSVs, its files and its argument errors; one spawn checks main.ts wires it up. */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerScalingCommands } from '../../src/cli/commands/scaling.js';
import { computeOptimal, predictLoss, type ScalingLaw } from '../../src/scaling/chinchilla.js';
import type { ScalingReport } from '../../src/scaling/report.js';

const LAW: ScalingLaw = { E: 1.69, A: 406.4, B: 410.7, alpha: 0.34, beta: 0.28 };

async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerScalingCommands(program);
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => void lines.push(parts.join(' ')));
  try {
    await program.parseAsync(['scaling', 'fit', ...args], { from: 'user' });
  } finally {
    log.mockRestore();
  }
  return lines.join('\n');
}

describe('tensorlm scaling fit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-scaling-cli-'));
  // IsoFLOP runs generated exactly from a known law: 5 budgets × 5 sizes around each optimum.
  const csv = join(dir, 'runs.csv');
  const rows = [1e18, 1e19, 1e20, 1e21, 1e22].flatMap((C) => {
    const center = Math.log(computeOptimal(LAW, C).N);
    return [-0.8, -0.4, 0, 0.4, 0.8].map((o) => {
      const N = Math.exp(center + o);
      return `${N},${C},${predictLoss(LAW, N, C / (6 * N))}`;
    });
  });
  writeFileSync(csv, `params,FLOPs,loss\n${rows.join('\n')}\n`);
  afterEach(() => vi.restoreAllMocks());

  it('prints both approaches as tables and writes fit.json and the plots', async () => {
    const out = join(dir, 'out');
    const text = await run(['--csv', csv, '--bootstrap', '3', '--bootstrap-starts', '2', '--compute', '5.9e23', '--out', out]);
    expect(text).toMatch(/25 runs from .*runs\.csv; columns N='params', D = C\/\(6N\), C='FLOPs', loss='loss'/);
    expect(text).toMatch(/│ E\s+│ 1\.69\s+│/);
    expect(text).toMatch(/│ α \(alpha\)\s+│ 0\.34\s+│/);
    expect(text).toMatch(/│ β \(beta\)\s+│ 0\.28\s+│/);
    expect(text).toMatch(/starts per resample: the full fit's optimum plus its 2 best grid starts \(reduced from 4500\)/);
    const tpp = computeOptimal(LAW, 5.9e23).tokensPerParameter;
    expect(text).toContain(`│ tokens per parameter │ ${Number(tpp.toPrecision(3))} `);
    // Approach 2's exponent on exact law data is β/(α+β) = 0.4516 (see isoflop.test.ts).
    expect(text).toMatch(/│ N_opt = k·C\^a │ 0\.4516 /);
    expect(text).toMatch(/│ D_opt = k·C\^b │ 0\.5484 /);
    const report = JSON.parse(readFileSync(join(out, 'fit.json'), 'utf8')) as ScalingReport;
    expect(report.approach3!.alpha).toBeCloseTo(0.34, 6);
    expect(report.approach2!.N!.exponent).toBeCloseTo(0.28 / 0.62, 9);
    for (const name of ['loss-vs-n.svg', 'isoflop.svg', 'frontier.svg']) expect(readFileSync(join(out, name), 'utf8')).toMatch(/^<svg/);
  });

  it('--json prints the report; exact data gives collapsed intervals at the planted values', async () => {
    const text = await run(['--csv', csv, '--approach', '3', '--json', '--bootstrap', '4', '--bootstrap-starts', '1', '--seed', '3', '--compute', '1e21']);
    const report = JSON.parse(text) as ScalingReport;
    expect(report.approach2).toBeNull();
    const a3 = report.approach3!;
    expect(a3.starts).toBe(4500);
    for (const key of ['E', 'A', 'B', 'alpha', 'beta'] as const) {
      expect(Math.abs(a3[key] / LAW[key] - 1)).toBeLessThan(1e-6);
      const i = a3.bootstrap![key];
      expect(Math.abs(i.lower / LAW[key] - 1)).toBeLessThan(1e-5);
      expect(Math.abs(i.upper / LAW[key] - 1)).toBeLessThan(1e-5);
    }
    expect(a3.bootstrap!.seed).toBe(3);
    expect(a3.bootstrap!.resamples).toBe(4);
    expect(a3.computeOptimal!.tokensPerParameter / computeOptimal(LAW, 1e21).tokensPerParameter - 1).toBeLessThan(1e-5);
    expect(a3.bootstrap!.compute[0].C).toBe(1e21);
  });

  it('rejects bad flags and bad files with clear messages', async () => {
    await expect(run(['--csv', csv, '--drop-highest', '-1'])).rejects.toThrow(/--drop-highest must be a non-negative integer, got '-1'/);
    await expect(run(['--csv', csv, '--approach', '4'])).rejects.toThrow(/Allowed choices are 3, 2, both/);
    await expect(run(['--csv', csv, '--bootstrap-starts', 'many'])).rejects.toThrow(/--bootstrap-starts must be 'full' or a non-negative integer/);
    await expect(run(['--csv', csv, '--compute', '0'])).rejects.toThrow(/--compute must be a positive number, got '0'/);
    await expect(run(['--csv', csv, '--budgets', '1e20,x'])).rejects.toThrow(/--budgets must be comma-separated positive FLOP counts, got 'x'/);
    await expect(run(['--csv', join(dir, 'none.csv')])).rejects.toThrow(/cannot read runs CSV .*none\.csv: no such file/);
    await expect(run(['--csv', csv, '--loss-col', 'ppl'])).rejects.toThrow(/the loss column 'ppl' \(lossColumn \/ --loss-col\) is not in the CSV/);
    expect(existsSync(join(dir, 'fit.json'))).toBe(false);
  });

  it('is registered in the tensorlm program (src/cli/main.ts)', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts'), 'scaling', 'fit', '--help']);
    expect(stdout).toMatch(/Usage: tensorlm scaling fit \[options\]/);
    expect(stdout).toMatch(/--drop-highest <k>/);
  }, 60_000);
});
