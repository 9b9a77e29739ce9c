/**
 * Batched generation against batch-1 runs (docs/performance.md, "Batched generation"): tokens/s
 * of N continuations of one prompt drawn as N batch-1 runs and as the N rows of one batched run
 * (models/generate.ts's generateTexts), N = 1, 4, 8, tiny preset with random weights, best of 4.
 *
 *   node --single-threaded-gc --import tsx bench/batched-generation.ts
 */
import '../src/index.js';
import { generateTexts } from '../src/models/generate.js';
import { presetConfig } from '../src/models/presets.js';
import { TransformerLM } from '../src/models/transformer.js';
import { Generator } from '../src/tensor/random.js';
import { CharTokenizer } from '../src/tokenizers/char.js';

const tokenizer = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ \n.,;:!?'-&$3");
const config = presetConfig('tiny', { vocabSize: tokenizer.vocabSize });
const model = new TransformerLM(config, { generator: new Generator(1) });
const TOKENS = 200;
const options = { maxNewTokens: TOKENS, temperature: 0.8, seed: 1 };

/** Tokens per second of `run`, which returns the tokens it generated. */
function rate(run: () => number): number {
  const started = performance.now();
  const tokens = run();
  return tokens / ((performance.now() - started) / 1000);
}

console.log(`tiny (dModel ${config.dModel}, ${config.nLayers} layers, maxSeqLen ${config.maxSeqLen}), ${TOKENS} tokens per row`);
generateTexts(model, tokenizer, 'ROMEO:', { ...options, numSamples: 2 }); // warm-up
const sizes = [1, 4, 8];
const best = { single: sizes.map(() => 0), batched: sizes.map(() => 0) };
for (let rep = 0; rep < 4; rep++) {
  sizes.forEach((n, i) => {
    const single = rate(() => {
      let tokens = 0;
      for (let r = 0; r < n; r++) tokens += generateTexts(model, tokenizer, 'ROMEO:', { ...options, seed: r + 1 })[0].tokens.length;
      return tokens;
    });
    const batched = rate(() => generateTexts(model, tokenizer, 'ROMEO:', { ...options, numSamples: n }).reduce((t, r) => t + r.tokens.length, 0));
    best.single[i] = Math.max(best.single[i], single);
    best.batched[i] = Math.max(best.batched[i], batched);
  });
}
sizes.forEach((n, i) => console.log(`N = ${n}: ${n} batch-1 run${n === 1 ? '' : 's'} ${Math.round(best.single[i])} tokens/s, one batched run ${Math.round(best.batched[i])} tokens/s (${(best.batched[i] / best.single[i]).toFixed(2)}×)`));
