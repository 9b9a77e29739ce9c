/**
 * Importing TensorLM has no side effects: no koffi, no BLAS, no malloc tuning, no warning. The
 * backends are installed and the default chosen on the first kernel call, and BLAS (with koffi)
 * is loaded on the first product that uses it. The BLAS cases run with TENSORLM_NATIVE=0, since
 * the native backend (compiled C kernels, also through koffi) loads on the first kernel of any
 * kind; its own cases are at the end. Each case runs tests/helpers/lazy-import-child.ts
 * in a fresh Node process, since inside vitest the library is long imported (and koffi maybe
 * loaded) by the time a test runs.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findBlasLibrary } from '../../src/backends/blas/index.js';
import { findCompiler } from '../../src/backends/native/index.js';
import { makeTempDir } from '../tokenizers/helpers.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const child = fileURLToPath(new URL('../helpers/lazy-import-child.ts', import.meta.url));

interface Snapshot {
  koffi: boolean;
  koffiMapped: boolean | null;
  blasMapped: boolean | null;
  warnings: string[];
}
interface Observed {
  afterImport: Snapshot;
  afterElementwise: Snapshot & { backend: string; values: number[]; finite: boolean };
  backends: string[];
  afterMatmul: Snapshot & { backend: string; threads: number; c35: number; expected35: number };
}

/**
 * Runs the child with only the given TENSORLM_* variables (and CC) set, the rest of the environment
 * kept; the native backend is off unless `env` turns it on.
 */
function run(scenario: string, env: Record<string, string> = {}): { observed: Observed; stderr: string } {
  const clean: NodeJS.ProcessEnv = { TENSORLM_NATIVE: '0' };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TENSORLM_') && k !== 'NODE_OPTIONS' && k !== 'CC') clean[k] = v;
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, scenario], { cwd: repo, env: { ...clean, ...env }, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child '${scenario}' exited with ${r.status ?? r.signal}: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  return { observed: JSON.parse(line) as Observed, stderr: r.stderr };
}

function expectNothingLoaded(s: Snapshot): void {
  expect(s.koffi, 'koffi in the CommonJS module cache').toBe(false);
  if (s.koffiMapped !== null) expect(s.koffiMapped, "koffi's native addon mapped into the process").toBe(false);
  if (s.blasMapped !== null) expect(s.blasMapped, 'a BLAS library mapped into the process').toBe(false);
}

const blas = findBlasLibrary();
const tmp = makeTempDir();
afterAll(tmp.cleanup);

describe('importing TensorLM', () => {
  const { observed, stderr } = run('default');

  it('loads no koffi, no BLAS and prints no warning at import, nor for elementwise ops', () => {
    expectNothingLoaded(observed.afterImport);
    expect(observed.afterImport.warnings).toEqual([]);
    expectNothingLoaded(observed.afterElementwise);
    expect(observed.afterElementwise.values).toEqual([2, 6, 12]);
    expect(observed.afterElementwise.finite).toBe(true);
    if (blas.candidate !== null) {
      expect(observed.afterElementwise.warnings).toEqual([]);
      expect(stderr).toBe('');
    } else {
      // The one "no BLAS" warning belongs to the lazy default choice, i.e. the first kernel call.
      expect(observed.afterElementwise.warnings).toHaveLength(1);
      expect(observed.afterElementwise.warnings[0]).toMatch(/backend 'blas' is not available \(no CBLAS library found/);
    }
  });

  it('chooses the fastest backend on the first kernel call', () => {
    expect(observed.afterElementwise.backend).toBe(blas.candidate !== null ? 'blas' : 'wasm');
    expect(observed.backends.includes('blas')).toBe(blas.candidate !== null);
  });

  it.skipIf(blas.candidate === null)(`loads koffi and BLAS on the first large matrix product (${blas.candidate !== null ? `BLAS: ${blas.path}` : `skipped: ${blas.reason}`})`, () => {
    const m = observed.afterMatmul;
    expect(m.koffi).toBe(true);
    if (m.koffiMapped !== null) expect(m.koffiMapped).toBe(true);
    if (m.blasMapped !== null) expect(m.blasMapped).toBe(true);
    expect(m.backend).toBe('blas');
    expect(m.warnings).toEqual([]);
    expect(Math.abs(m.c35 - m.expected35)).toBeLessThan(1e-3 * (1 + Math.abs(m.expected35)));
  });
});

describe('choosing the backend lazily', () => {
  it('reads TENSORLM_BACKEND at the first kernel call; the js backend never loads koffi', () => {
    const { observed } = run('default', { TENSORLM_BACKEND: 'js' });
    expect(observed.afterElementwise.backend).toBe('js');
    expectNothingLoaded(observed.afterMatmul);
    expect(observed.afterMatmul.warnings).toEqual([]);
    expect(Math.abs(observed.afterMatmul.c35 - observed.afterMatmul.expected35)).toBeLessThan(1e-3 * (1 + Math.abs(observed.afterMatmul.expected35)));
  });

  it('lets setBackend() before the first kernel call win over TENSORLM_BACKEND and the default', () => {
    const { observed } = run('explicit', { TENSORLM_BACKEND: 'js' });
    expect(observed.afterElementwise.backend).toBe('wasm');
    expect(observed.afterMatmul.backend).toBe('wasm');
    expectNothingLoaded(observed.afterMatmul);
  });

  it('warns once, at the first kernel call, when no BLAS library is found', () => {
    const { observed } = run('default', { TENSORLM_BLAS: join(tmp.dir, 'no-such-libblas.so') });
    expect(observed.afterImport.warnings).toEqual([]);
    expect(observed.afterElementwise.backend).toBe('wasm');
    expect(observed.backends).not.toContain('blas');
    expect(observed.afterMatmul.warnings).toHaveLength(1);
    expect(observed.afterMatmul.warnings[0]).toMatch(/backend 'blas' is not available \(TENSORLM_BLAS=.*no-such-libblas\.so was not found\); using the slower 'wasm'/);
    expectNothingLoaded(observed.afterMatmul);
  });

  it('falls back to the wasm gemm with one warning when the library is found but does not load', () => {
    const fake = join(tmp.fresh(), 'libfakeblas.so');
    writeFileSync(fake, 'not a shared library');
    const { observed } = run('default', { TENSORLM_BLAS: fake });
    expect(observed.afterElementwise.backend).toBe('blas'); // found on disk: chosen without loading it
    expect(observed.afterElementwise.warnings).toEqual([]);
    const m = observed.afterMatmul;
    expect(m.warnings).toHaveLength(1);
    expect(m.warnings[0]).toMatch(/BLAS could not be loaded \(TENSORLM_BLAS=.*libfakeblas\.so could not be loaded or has no cblas_sgemm\); matrix products use the 'wasm' kernels \(backend now 'wasm'\)/);
    expect(m.backend).toBe('wasm');
    expect(Math.abs(m.c35 - m.expected35)).toBeLessThan(1e-3 * (1 + Math.abs(m.expected35)));
  });
});

describe.skipIf(blas.candidate === null)(`setNumThreads before BLAS is loaded (${blas.candidate !== null ? 'BLAS found' : `skipped: ${blas.reason}`})`, () => {
  it('is remembered and applied when BLAS loads', () => {
    const { observed } = run('threads');
    expectNothingLoaded(observed.afterElementwise);
    expect(observed.afterMatmul.koffi).toBe(true);
    // OpenBLAS and BLIS have a thread control TensorLM drives; other libraries report 1.
    expect(observed.afterMatmul.threads).toBe(/openblas|blis/.test(blas.path ?? '') ? 2 : 1);
  });
});

const compiler = findCompiler();

describe('the native backend', () => {
  it.skipIf(compiler.compiler === null || blas.candidate === null)(
    `is the default where a C compiler is found, compiled and loaded on the first kernel call, not at import (${compiler.compiler ?? `skipped: ${compiler.reason}`})`,
    () => {
      const { observed, stderr } = run('default', { TENSORLM_NATIVE: '1' });
      expectNothingLoaded(observed.afterImport);
      expect(observed.afterImport.warnings).toEqual([]);
      expect(observed.afterElementwise.backend).toBe('native');
      expect(observed.afterElementwise.koffi).toBe(true);
      expect(observed.afterElementwise.values).toEqual([2, 6, 12]);
      expect(observed.afterElementwise.finite).toBe(true);
      expect(observed.backends).toContain('native');
      const m = observed.afterMatmul;
      expect(m.backend).toBe('native');
      expect(m.warnings).toEqual([]);
      expect(stderr).toBe('');
      expect(Math.abs(m.c35 - m.expected35)).toBeLessThan(1e-3 * (1 + Math.abs(m.expected35)));
    },
  );

  it.skipIf(blas.candidate === null)('without a compiler it is unavailable, with one warning naming why, and blas runs', () => {
    const { observed } = run('default', { TENSORLM_NATIVE: '1', CC: join(tmp.dir, 'no-such-cc') });
    expect(observed.afterElementwise.backend).toBe('blas');
    expect(observed.backends).not.toContain('native');
    expect(observed.afterElementwise.warnings).toHaveLength(1);
    expect(observed.afterElementwise.warnings[0]).toMatch(/backend 'native' is not available \(CC=.*no-such-cc was not found\); using the slower 'blas'/);
    expect(observed.afterElementwise.values).toEqual([2, 6, 12]);
  });

  it.skipIf(compiler.compiler === null)('keeps running, on the wasm kernels underneath, when a BLAS library is found but does not load', () => {
    const fake = join(tmp.fresh(), 'libfakeblas.so');
    writeFileSync(fake, 'not a shared library');
    const { observed } = run('vector', { TENSORLM_NATIVE: '1', TENSORLM_BLAS: fake });
    expect(observed.afterElementwise.backend).toBe('native');
    const m = observed.afterMatmul;
    expect(m.backend).toBe('native');
    expect(m.warnings).toHaveLength(1);
    expect(m.warnings[0]).toMatch(/BLAS could not be loaded \(TENSORLM_BLAS=.*libfakeblas\.so could not be loaded or has no cblas_sgemm\); matrix products use the 'wasm' kernels/);
    expect(Math.abs(m.c35 - m.expected35)).toBeLessThan(1e-3 * (1 + Math.abs(m.expected35)));
  });

  it.skipIf(blas.candidate === null)('a compiler that fails leaves one warning and the blas kernels, with the same results', () => {
    const dir = tmp.fresh();
    const fake = join(dir, 'broken-cc');
    writeFileSync(fake, '#!/bin/sh\necho "broken-cc: cannot compile" >&2\nexit 1\n', { mode: 0o755 });
    const { observed } = run('default', { TENSORLM_NATIVE: '1', CC: fake });
    expect(observed.afterImport.warnings).toEqual([]);
    const m = observed.afterMatmul;
    expect(m.backend).toBe('blas');
    expect(m.warnings).toHaveLength(1);
    expect(m.warnings[0]).toMatch(/the native kernels could not be built or loaded \(.*broken-cc.*\); the 'blas' kernels run instead \(backend now 'blas'\)/);
    expect(observed.afterElementwise.values).toEqual([2, 6, 12]);
    expect(Math.abs(m.c35 - m.expected35)).toBeLessThan(1e-3 * (1 + Math.abs(m.expected35)));
  });
});
