/**
 * The cost and the gain of int8 weight-only quantization (issue 18) on a trained run: validation
 * loss and perplexity of float32, 'int8' and 'q8_0' on the run's whole validation split, and
 * batch-1 decode speed (the DecodeEngine, one thread) of each, interleaved and repeated because
 * the machine is shared.
 *
 *   node --import tsx bench/quantize.ts [--run runs/shakespeare2] [--rounds 5] [--tokens 120] [--no-eval]
 *   node --import tsx bench/quantize.ts --preset nano-trickster     (decode speed only, random weights)
 *
 * (TENSORLM_DATA_DIR must point at the run's dataset cache.)
 */
import { installNodeBackends, setNumThreads } from '../src/backends/node.js';
import { setBackendInstaller } from '../src/backends/registry.js';
import { setWasmThreads } from '../src/backends/wasm/index.js';
import { dataDirEnv } from '../src/env.js';
import { DecodeEngine } from '../src/models/decode.js';
import { describeQuantization, quantizeModel } from '../src/models/quantize.js';
import { TransformerLM } from '../src/models/transformer.js';
import { presetModelConfig } from '../src/models/presets.js';
import type { TransformerConfig } from '../src/models/config.js';
import { Generator } from '../src/tensor/random.js';
import type { QuantFormat } from '../src/nn/quantized.js';
import { evaluateStream } from '../src/train/evaluate.js';
import { flag } from './args.js';
import { loadRun, openRunData, VALIDATION_MAX_TOKENS } from '../src/train/trainer.js';

setBackendInstaller(installNodeBackends);

const run = flag('run', 'runs/shakespeare2');
const preset = flag('preset', '');
const rounds = Number(flag('rounds', '5'));
const tokens = Number(flag('tokens', '120'));

type Variant = 'f32' | QuantFormat;
const variants: Variant[] = ['f32', 'int8', 'q8_0'];

function load(v: Variant): TransformerLM {
  const model = preset ? new TransformerLM(presetModelConfig(preset) as TransformerConfig, { generator: new Generator(1) }) : loadRun(run).model;
  if (!(model instanceof TransformerLM)) throw new Error(`${run} is not a transformer run`);
  model.eval();
  if (v !== 'f32') console.log(`${v}: ${describeQuantization(quantizeModel(model, v))}`);
  return model;
}

const models = new Map<Variant, TransformerLM>(variants.map((v) => [v, load(v)]));
setNumThreads(1);
setWasmThreads(1);

if (!process.argv.includes('--no-eval') && !preset) {
  const { config, tokenizer } = loadRun(run);
  const data = await openRunData(config.train, tokenizer, { dataDir: config.train.dataDir ?? dataDirEnv() });
  const val = data.readSplit('val', VALIDATION_MAX_TOKENS);
  let base = 0;
  for (const v of variants) {
    const t0 = performance.now();
    const f = evaluateStream(models.get(v) as TransformerLM, val, config.train.blockSize, config.train.batchSize);
    if (v === 'f32') base = f.perplexity;
    const rel = v === 'f32' ? '' : `, perplexity ${((f.perplexity / base - 1) * 100).toFixed(3)}% vs f32`;
    console.log(`${v}: val loss ${f.loss.toFixed(5)}, perplexity ${f.perplexity.toFixed(4)} over ${f.tokens} tokens${rel} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
}

/** Tokens per second of greedy batch-1 decoding: one prompt token, then `tokens` steps. */
function decodeSpeed(model: TransformerLM): number {
  const engine = new DecodeEngine(model, 1, tokens + 1);
  let logits = engine.forward(Int32Array.of(0), 1);
  const t0 = performance.now();
  for (let i = 0; i < tokens; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    logits = engine.forward(Int32Array.of(best), 1);
  }
  return tokens / ((performance.now() - t0) / 1000);
}

for (const v of variants) decodeSpeed(models.get(v) as TransformerLM); // warm-up
const speeds = new Map<Variant, number[]>(variants.map((v) => [v, []]));
for (let r = 0; r < rounds; r++) for (const v of variants) speeds.get(v)?.push(decodeSpeed(models.get(v) as TransformerLM));
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const v of variants) {
  const s = speeds.get(v) as number[];
  console.log(`${v}: decode ${median(s).toFixed(0)} tokens/s median of ${rounds} (${s.map((x) => x.toFixed(0)).join(', ')}), batch 1, 1 thread`);
}
