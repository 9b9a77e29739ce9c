/** Runs tools/bench/torch_bench.py under Debian's python3-torch, if it is installed. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface TorchRequest {
  threads: number;
  gemm?: [number, number, number][];
  models?: { name: string; config: Record<string, unknown>; batch: number; seq: number; generateTokens?: number }[];
  seconds?: number;
}

export interface TorchResult {
  torch: string;
  threads: number;
  gemm: { shape: [number, number, number]; gflops: number }[];
  models: { name: string; trainTokensPerSecond: number; parameters: number; generateTokensPerSecond?: number }[];
}

const PYTHON = process.env.TENSORLM_PYTHON ?? '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../tools/bench/torch_bench.py', import.meta.url));

/** Why PyTorch figures are missing, or null when they can be measured. */
export function torchUnavailable(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return 'python3-torch is not installed (apt-get install -y python3-torch libopenblas0-pthread)';
  return null;
}

export function runTorch(request: TorchRequest): TorchResult {
  // Passive OpenMP waiting: spinning workers make PyTorch slower on 2 shared cores (see docs/bench).
  const env = { ...process.env, OMP_NUM_THREADS: String(request.threads), OMP_WAIT_POLICY: 'PASSIVE' };
  const run = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify(request), encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`torch bench failed: ${run.stderr.slice(-2000)}`);
  return JSON.parse(run.stdout) as TorchResult;
}
