/**
 * Flash vs materialised attention: forward + backward time of scaledDotProductAttention (causal,
 * B 1, H 4, D 64) over T = 64 … 4096 with each path forced, the crossover (the first T from which
 * flash is faster at every measured length), and the memory the graph keeps after the forward pass
 * at T = 4096 (the activations backward needs: scores and probabilities for the materialised path,
 * O and the row logsumexp for flash) plus the peak of the pass.
 *
 *   node --import tsx bench/flash-attention.ts [--quick]
 *
 * Memory is measured, not computed: process.memoryUsage().arrayBuffers (every tensor's storage is
 * a typed array, so this is the tensors' bytes) after a forced GC, before the forward pass and after
 * it with the graph alive ("kept"), and sampled after forward and after backward for the "peak"
 * (before anything is collected — a lower bound of the true peak). Timings alternate the two paths
 * and keep the median of several repeats: the machine is shared and noisy.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { installNodeBackends } from '../src/backends/node.js';
import { getBackend, setBackendInstaller } from '../src/backends/registry.js';
import { scaledDotProductAttention } from '../src/ops/attention.js';
import { setAttentionImplementation, type AttentionImplementation } from '../src/ops/flash-attention.js';
import { randn } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';

export interface FlashRow {
  t: number;
  /** Median forward + backward milliseconds. */
  materializedMs: number;
  flashMs: number;
}

export interface FlashMemory {
  t: number;
  /** Bytes of tensors kept by the graph after the forward pass, and the sampled peak over forward + backward. */
  materialized: { keptBytes: number; peakBytes: number };
  flash: { keptBytes: number; peakBytes: number };
}

export interface FlashFigures {
  shape: { b: number; h: number; d: number; causal: boolean };
  backend: string;
  rows: FlashRow[];
  /** The smallest measured T from which flash is faster at every measured T, or null. */
  crossover: number | null;
  memory: FlashMemory | null;
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const B = 1;
const H = 4;
const D = 64;

function inputs(t: number): [Tensor, Tensor, Tensor] {
  const g = new Generator(t);
  return [0, 1, 2].map(() => randn([B, H, t, D], { generator: g }).requiresGrad_()) as [Tensor, Tensor, Tensor];
}

function step(impl: AttentionImplementation, q: Tensor, k: Tensor, v: Tensor): void {
  const previous = setAttentionImplementation(impl);
  try {
    scaledDotProductAttention(q, k, v, { isCausal: true }).sum().backward();
  } finally {
    setAttentionImplementation(previous);
  }
  q.grad = null;
  k.grad = null;
  v.grad = null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Forward + backward of both paths at length t, alternated, `repeats` times each; medians in ms. */
function time(t: number, repeats: number): FlashRow {
  const [q, k, v] = inputs(t);
  step('materialized', q, k, v); // warm-up
  step('flash', q, k, v);
  const ms: Record<'materialized' | 'flash', number[]> = { materialized: [], flash: [] };
  for (let r = 0; r < repeats; r++) {
    for (const impl of r % 2 === 0 ? (['materialized', 'flash'] as const) : (['flash', 'materialized'] as const)) {
      const t0 = performance.now();
      step(impl, q, k, v);
      ms[impl].push(performance.now() - t0);
    }
  }
  return { t, materializedMs: median(ms.materialized), flashMs: median(ms.flash) };
}

function arrayBytes(): number {
  return process.memoryUsage().arrayBuffers;
}

/** A full collection, twice with a pause: array buffers' backing stores are freed by a background sweeper. */
async function settle(): Promise<void> {
  for (let i = 0; i < 2; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
}

export async function memoryAt(t: number): Promise<FlashMemory> {
  const one = async (impl: AttentionImplementation) => {
    const [q, k, v] = inputs(t);
    await settle();
    const base = arrayBytes();
    const previous = setAttentionImplementation(impl);
    try {
      const y = scaledDotProductAttention(q, k, v, { isCausal: true });
      const afterForward = arrayBytes();
      await settle();
      const kept = arrayBytes() - base;
      y.sum().backward();
      const afterBackward = arrayBytes();
      return { keptBytes: kept, peakBytes: Math.max(afterForward, afterBackward) - base };
    } finally {
      setAttentionImplementation(previous);
    }
  };
  const materialized = await one('materialized');
  await settle();
  const flash = await one('flash');
  await settle();
  return { t, materialized, flash };
}

export async function runFlashAttentionBench(options: { quick?: boolean; print?: (line: string) => void } = {}): Promise<FlashFigures> {
  const print = options.print ?? ((line: string) => process.stdout.write(line + '\n'));
  const quick = options.quick ?? false;
  const lengths = quick ? [64, 128, 256, 512, 1024] : [64, 128, 256, 512, 1024, 2048, 4096];
  const rows: FlashRow[] = [];
  for (const t of lengths) {
    const repeats = quick ? (t >= 1024 ? 3 : 5) : t >= 2048 ? 3 : t >= 512 ? 5 : 9;
    const row = time(t, repeats);
    rows.push(row);
    print(`  T=${String(t).padStart(4)}  materialised ${row.materializedMs.toFixed(2).padStart(9)} ms   flash ${row.flashMs.toFixed(2).padStart(9)} ms   flash/materialised ${(row.flashMs / row.materializedMs).toFixed(2)}×`);
  }
  let crossover: number | null = null;
  for (let i = rows.length - 1; i >= 0 && rows[i].flashMs < rows[i].materializedMs; i--) crossover = rows[i].t;
  const memory = await memoryAt(4096);
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  print(`  crossover (flash faster from here on): ${crossover === null ? 'none measured' : `T = ${crossover}`}`);
  print(`  memory at T = 4096 (arrayBuffers): materialised kept ${mb(memory.materialized.keptBytes)}, peak ≥ ${mb(memory.materialized.peakBytes)}; flash kept ${mb(memory.flash.keptBytes)}, peak ≥ ${mb(memory.flash.peakBytes)}`);
  return { shape: { b: B, h: H, d: D, causal: true }, backend: getBackend(), rows, crossover, memory };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  setBackendInstaller(installNodeBackends);
  const quick = process.argv.includes('--quick');
  console.log(`flash vs materialised attention, causal, B ${B}, H ${H}, D ${D}, forward + backward (backend ${getBackend()}):`);
  await runFlashAttentionBench({ quick });
}
