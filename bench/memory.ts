/**
 * Memory discipline: trains the `tiny` model for N steps (default 1000) and samples RSS and heap
 * every 50 steps; after warm-up the figures must stay flat. Not a test (it takes minutes):
 *   npx tsx bench/memory.ts [steps]
 */
import { installNodeBackends } from '../src/backends/node.js';
import { setBackendInstaller } from '../src/backends/registry.js';
import { presetConfig } from '../src/models/presets.js';
import { TransformerLM } from '../src/models/transformer.js';
import { AdamW } from '../src/optim/adam.js';
import { languageModelLoss, LrSchedule, TrainingCore } from '../src/train/loop.js';
import { randint } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';

// A program of its own that imports library modules directly: it names Node's backends.
setBackendInstaller(installNodeBackends);

const steps = Number(process.argv[2] ?? 1000);
const config = presetConfig('tiny');
const gen = new Generator(0);
const model = new TransformerLM(config, { generator: gen });
const opt = new AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1 });
const core = new TrainingCore({ model, optimizer: opt, schedule: new LrSchedule({ kind: 'constant', lr: 1e-3, warmupSteps: 0, maxSteps: steps }), loss: languageModelLoss, gradClip: 1 });
const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
const samples: { step: number; rss: number; heap: number; external: number }[] = [];
const t0 = performance.now();
for (let step = 1; step <= steps; step++) {
  const x = randint(0, config.vocabSize, [16, 128], { generator: gen });
  const y = randint(0, config.vocabSize, [16, 128], { generator: gen });
  // The training core's step, as `tensorlm train` runs it (the graph's buffers go back to the pool).
  core.trainStep({ x, y });
  if (step % 50 === 0) {
    const m = process.memoryUsage();
    samples.push({ step, rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers });
    console.log(`step ${step}: rss ${mib(m.rss)} MiB, heap ${mib(m.heapUsed)} MiB, array buffers ${mib(m.arrayBuffers)} MiB (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
}
const after = samples.filter((s) => s.step >= Math.min(200, steps / 2));
const rss = after.map((s) => s.rss);
console.log(`after warm-up: RSS min ${mib(Math.min(...rss))} MiB, max ${mib(Math.max(...rss))} MiB; peak RSS ${mib(process.resourceUsage().maxRSS * 1024)} MiB`);
