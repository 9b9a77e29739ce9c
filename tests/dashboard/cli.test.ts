/** `tensorlm dashboard` end to end: prints its URL, answers, stops cleanly on SIGTERM; clear argument errors. */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];
const execFileAsync = promisify(execFile);

async function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [...CLI, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

describe('tensorlm dashboard', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-dashboard-cli-'));
  const run = join(dir, 'runs', 'study', 'trial-1');
  mkdirSync(run, { recursive: true });
  writeFileSync(join(run, 'metrics.jsonl'), JSON.stringify({ kind: 'train', step: 1, tokens: 128, loss: 4, lr: 1e-3, tokensPerSecond: 10, elapsedSeconds: 1 }) + '\n');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves --runs, prints its URL and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [...CLI, 'dashboard', '--runs', join(dir, 'runs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed; stdout: ${stdout} stderr: ${stderr}`)), 20_000);
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
    });
    try {
      const res = await fetch(new URL('/api/runs', url));
      expect(res.status).toBe(200);
      const { runs } = (await res.json()) as { runs: { name: string; lastStep: number }[] };
      expect(runs).toMatchObject([{ name: 'study/trial-1', lastStep: 1 }]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    expect(stdout).toMatch(/SIGTERM: stopping the dashboard/);
  }, 30_000);

  it('names a --run directory that is missing or not a run, and a bad --port', async () => {
    const [missing, notRun, port] = await Promise.all([
      cli(['dashboard', '--run', join(dir, 'nope'), '--port', '0']),
      cli(['dashboard', '--run', dir, '--port', '0']),
      cli(['dashboard', '--port', 'http']),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--run .*nope: no such directory/);
    expect(notRun.code).toBe(1);
    expect(notRun.stderr).toMatch(/not a run directory/);
    expect(port.code).not.toBe(0);
    expect(port.stderr).toMatch(/--port must be an integer in 0\.\.65535/);
  }, 30_000);
});
