/**
 * The μP coordinate check (Yang et al. 2022, "Tensor Programs V", §7 / Fig. 5; microsoft/mup's
 * coord_check.py): for several widths, train a few AdamW steps on one fixed batch at a rather
 * large LR and record the mean |x| of each layer's output at every step. Under μP every curve of
 * mean |x| against width is flat (the log-log slope ≈ 0); under SP with Adam the hidden layers'
 * and the logits' coordinates grow ∝ width after the first update (slope ≈ 1).
 *
 * Widening keeps the head count fixed, so each head widens and μP's 1/d_head attention scale is
 * exercised (models/config.ts, MupConfig.baseHeadDim); dFF = 4·dModel, so the FFN widens by m too.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { TextDataset } from '../data/dataset.js';
import type { MupConfigInput } from '../models/config.js';
import { muParamGroups } from '../models/mup.js';
import { TransformerLM } from '../models/transformer.js';
import type { RemovableHandle } from '../nn/module.js';
import { AdamW } from '../optim/adam.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { languageModelLoss, LrSchedule, TrainingCore } from '../train/loop.js';

export type Parametrization = 'sp' | 'mup';

/** A small fixed text (Shakespeare's sonnets 18 and 116, public domain) for a char vocabulary without files. */
export const COORD_CHECK_TEXT = `Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.

Let me not to the marriage of true minds
Admit impediments. Love is not love
Which alters when it alteration finds,
Or bends with the remover to remove.
O no! it is an ever-fixed mark
That looks on tempests and is never shaken;
It is the star to every wand'ring bark,
Whose worth's unknown, although his height be taken.
Love's not Time's fool, though rosy lips and cheeks
Within his bending sickle's compass come;
Love alters not with his brief hours and weeks,
But bears it out even to the edge of doom.
If this be error and upon me proved,
I never writ, nor no man ever loved.
`;

export interface CoordCheckOptions {
  /** Model widths (dModel), each divisible by nHeads. Default 64, 128, 256, 512, 1024. */
  widths?: readonly number[];
  /** AdamW steps; activations are recorded before each and after the last (steps + 1 points). Default 5. */
  steps?: number;
  /** LR (at the base width for μP). Default 1e-2. */
  lr?: number;
  /** Default 2. */
  nLayers?: number;
  /** Fixed while the width grows (the head dim grows). Default 4. */
  nHeads?: number;
  /**
   * Fixed head size instead (nanoGPT-mup's choice): nHeads = width/headDim and μP's baseHeadDim =
   * headDim, so the logit scale stays 1/√headDim. Default null (fixed head count).
   */
  headDim?: number | null;
  /** μP's base width; default the smallest width, where SP and μP are then the same model. */
  baseWidth?: number;
  /** Other μP options (multipliers, zero init). */
  mup?: Omit<Partial<MupConfigInput>, 'baseWidth'>;
  /** Tied readout (the repository's default) or a separate head. Default true. */
  tieWeights?: boolean;
  /** The one fixed batch. Default 8 × 32. */
  batchSize?: number;
  blockSize?: number;
  /** Initialisations averaged per width (different init, same batch). Default 1. */
  seeds?: number;
  /** Seed of the batch and of the first initialisation. Default 0. */
  seed?: number;
  /** Text for the char vocabulary and the batch. Default COORD_CHECK_TEXT. */
  text?: string;
  parametrizations?: readonly Parametrization[];
  /** Called after each (parametrization, width) with the seconds it took. */
  onProgress?: (info: { parametrization: Parametrization; width: number; seconds: number }) => void;
}

/** One recorded mean |x| (averaged over seeds). */
export interface CoordRecord {
  parametrization: Parametrization;
  width: number;
  /** 0 = at initialisation, k = after k AdamW steps. */
  step: number;
  /** 'embedding', 'layers.{i}.attn', 'layers.{i}.ffn' or 'logits'. */
  layer: string;
  /** mean |x| over the batch's activation. */
  meanAbs: number;
  /**
   * mean |x − x₀|, x₀ the same activation at initialisation: what training has changed. It isolates
   * the update rules (LR scaling) from the init rules; 0 at step 0.
   */
  meanAbsDelta: number;
}

/** The least-squares slope of log(mean |x|) against log(width), one per parametrization, step and layer. */
export interface CoordSlope {
  parametrization: Parametrization;
  step: number;
  layer: string;
  /** null when some width recorded zero or a non-finite value (e.g. a zero-initialised readout at step 0). */
  slope: number | null;
  /** The same for meanAbsDelta (null at step 0). */
  deltaSlope: number | null;
}

export interface CoordCheckResult {
  settings: Required<Omit<CoordCheckOptions, 'onProgress' | 'text' | 'mup'>> & { mup: Omit<Partial<MupConfigInput>, 'baseWidth'>; vocabSize: number };
  /** Layer names in forward order. */
  layers: string[];
  records: CoordRecord[];
  slopes: CoordSlope[];
}

/**
 * Calls `fn(name, activation)` with the activations the coordinate check measures, on every
 * `model.forward` until the returned handle is removed. Each is observed by a forward hook on the
 * module that produces it, so a model nobody watches pays nothing:
 *   'embedding'        the input of the embedding dropout `drop`: the embeddings after μP's α_in;
 *   'layers.{i}.attn'  the output of block i's attention (before dropout and the residual add);
 *   'layers.{i}.ffn'   the output of block i's feed-forward (likewise);
 *   'logits'           the logits of forward (a hook on the model itself).
 * They arrive in that order, the forward order.
 */
export function recordActivations(model: TransformerLM, fn: (name: string, activation: Tensor) => void): RemovableHandle {
  const handles: RemovableHandle[] = [
    model.drop.registerForwardPreHook((_drop, [x]) => {
      fn('embedding', x);
    }),
  ];
  for (let i = 0; i < model.layers.length; i++) {
    const block = model.block(i);
    const prefix = `layers.${i}.`;
    handles.push(
      block.attn.registerForwardHook((_attn, _inputs, y) => {
        fn(`${prefix}attn`, y);
      }),
      block.ffn.registerForwardHook((_ffn, _inputs, y) => {
        fn(`${prefix}ffn`, y);
      }),
    );
  }
  handles.push(
    model.registerForwardHook((_model, _inputs, output) => {
      fn('logits', output.logits);
    }),
  );
  return { remove: () => handles.forEach((h) => h.remove()) };
}

/** Least-squares slope of log y against log x (natural logs; the base cancels). */
export function logLogSlope(xs: readonly number[], ys: readonly number[]): number | null {
  if (xs.length !== ys.length) throw new Error(`logLogSlope: ${xs.length} x values but ${ys.length} y values`);
  if (xs.length < 2) throw new Error('logLogSlope: needs at least 2 points');
  if (xs.some((x) => !(x > 0)) || ys.some((y) => !(y > 0) || !Number.isFinite(y))) return null;
  const lx = xs.map(Math.log);
  const ly = ys.map(Math.log);
  const mx = lx.reduce((s, v) => s + v, 0) / lx.length;
  const my = ly.reduce((s, v) => s + v, 0) / ly.length;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < lx.length; i++) {
    sxy += (lx[i] - mx) * (ly[i] - my);
    sxx += (lx[i] - mx) ** 2;
  }
  if (sxx === 0) throw new Error('logLogSlope: all widths are equal');
  return sxy / sxx;
}

function checkPositiveInt(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`coordCheck: ${name} must be a positive integer, got ${String(v)}`);
}

/**
 * Runs the coordinate check. Cost is dominated by the widest model: about (steps + 1) forward and
 * `steps` backward passes of a 2-layer model of that width per parametrization and seed.
 */
export function coordCheck(options: CoordCheckOptions = {}): CoordCheckResult {
  const widths = [...(options.widths ?? [64, 128, 256, 512, 1024])];
  const steps = options.steps ?? 5;
  const lr = options.lr ?? 1e-2;
  const nLayers = options.nLayers ?? 2;
  const headDim = options.headDim ?? null;
  const nHeads = options.nHeads ?? 4;
  const headsAt = (width: number) => (headDim === null ? nHeads : width / headDim);
  const batchSize = options.batchSize ?? 8;
  const blockSize = options.blockSize ?? 32;
  const seeds = options.seeds ?? 1;
  const seed = options.seed ?? 0;
  const tieWeights = options.tieWeights ?? true;
  const parametrizations = [...(options.parametrizations ?? (['sp', 'mup'] as const))];
  const mupExtra = options.mup ?? {};
  if (widths.length < 2) throw new Error(`coordCheck: needs at least 2 widths to fit a slope, got ${widths.length}`);
  if (new Set(widths).size !== widths.length) throw new Error(`coordCheck: widths must be distinct, got ${widths.join(',')}`);
  if (headDim !== null) checkPositiveInt('headDim', headDim);
  for (const w of widths) {
    checkPositiveInt('each width', w);
    if (headDim === null && w % nHeads !== 0) throw new Error(`coordCheck: width ${w} is not divisible by nHeads ${nHeads}`);
    if (headDim !== null && w % headDim !== 0) throw new Error(`coordCheck: width ${w} is not divisible by headDim ${headDim}`);
  }
  const baseWidth = options.baseWidth ?? Math.min(...widths);
  for (const [name, v] of [['steps', steps + 1], ['nLayers', nLayers], ['nHeads', nHeads], ['batchSize', batchSize], ['blockSize', blockSize], ['seeds', seeds], ['baseWidth', baseWidth]] as const) checkPositiveInt(name, v);
  if (!(typeof lr === 'number' && lr > 0 && Number.isFinite(lr))) throw new Error(`coordCheck: lr must be a positive number, got ${String(lr)}`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`coordCheck: seed must be a non-negative integer, got ${seed}`);
  for (const p of parametrizations) if (p !== 'sp' && p !== 'mup') throw new Error(`coordCheck: parametrization must be 'sp' or 'mup', got '${String(p)}'`);
  if (parametrizations.length === 0) throw new Error('coordCheck: no parametrization given');

  const text = options.text ?? COORD_CHECK_TEXT;
  const tokenizer = CharTokenizer.fromText(text);
  // The whole text as the train split: the batch is drawn from it once and reused every step.
  const dataset = TextDataset.fromText(text, tokenizer, { trainFraction: 0.999 });
  if (dataset.train.length <= blockSize) throw new Error(`coordCheck: the text has ${dataset.train.length} tokens, blockSize ${blockSize} needs more`);
  const { x, y } = dataset.getBatch('train', batchSize, blockSize, new Generator(seed));

  const sums = new Map<string, number>();
  const deltaSums = new Map<string, number>();
  const layerOrder: string[] = [];
  for (const parametrization of parametrizations) {
    for (const width of widths) {
      const started = performance.now();
      for (let s = 0; s < seeds; s++) {
        const model = new TransformerLM(
          {
            vocabSize: tokenizer.vocabSize,
            dModel: width,
            nLayers,
            nHeads: headsAt(width),
            dFF: 4 * width,
            maxSeqLen: blockSize,
            tieWeights,
            dropout: 0,
            mup: parametrization === 'mup' ? { ...mupExtra, baseWidth, ...(headDim === null ? {} : { baseHeadDim: headDim }) } : null,
          },
          { generator: new Generator(seed + 1000 * (s + 1)) },
        );
        const optimizer = new AdamW(muParamGroups(model, { lr, weightDecay: 0 }), { lr, betas: [0.9, 0.99], weightDecay: 0 });
        // The training core at a constant LR, without clipping: the coordinate check's plain Adam steps.
        const core = new TrainingCore({ model, optimizer, schedule: new LrSchedule({ kind: 'constant', lr, warmupSteps: 0, maxSteps: steps }), loss: languageModelLoss, gradClip: 0 });
        let step = 0;
        const initial = new Map<string, Tensor>();
        const recording = recordActivations(model, (layer, activation) =>
          noGrad(() => {
            if (s === 0 && parametrization === parametrizations[0] && width === widths[0] && step === 0) layerOrder.push(layer);
            const key = `${parametrization}|${width}|${step}|${layer}`;
            sums.set(key, (sums.get(key) ?? 0) + activation.abs().mean().item());
            if (step === 0) initial.set(layer, activation.detach().clone());
            const delta = step === 0 ? 0 : activation.sub(initial.get(layer) as Tensor).abs().mean().item();
            deltaSums.set(key, (deltaSums.get(key) ?? 0) + delta);
          }),
        );
        for (step = 0; step <= steps; step++) {
          if (step === steps) {
            noGrad(() => model.forward(x, y));
            break;
          }
          core.trainStep({ x, y });
        }
        recording.remove();
      }
      options.onProgress?.({ parametrization, width, seconds: (performance.now() - started) / 1000 });
    }
  }

  const records: CoordRecord[] = [];
  const slopes: CoordSlope[] = [];
  for (const parametrization of parametrizations) {
    for (let step = 0; step <= steps; step++) {
      for (const layer of layerOrder) {
        const key = (width: number) => `${parametrization}|${width}|${step}|${layer}`;
        const values = widths.map((width) => (sums.get(key(width)) as number) / seeds);
        const deltas = widths.map((width) => (deltaSums.get(key(width)) as number) / seeds);
        widths.forEach((width, i) => records.push({ parametrization, width, step, layer, meanAbs: values[i], meanAbsDelta: deltas[i] }));
        slopes.push({ parametrization, step, layer, slope: logLogSlope(widths, values), deltaSlope: step === 0 ? null : logLogSlope(widths, deltas) });
      }
    }
  }
  return {
    settings: { widths, steps, lr, nLayers, nHeads, headDim, baseWidth, tieWeights, batchSize, blockSize, seeds, seed, parametrizations, mup: mupExtra, vocabSize: tokenizer.vocabSize },
    layers: layerOrder,
    records,
    slopes,
  };
}

/** The slope of one layer at one step (the last step by default); `delta` for mean |x − x₀|. */
export function coordSlope(result: CoordCheckResult, parametrization: Parametrization, layer: string, step = result.settings.steps, delta = false): number | null {
  const s = result.slopes.find((r) => r.parametrization === parametrization && r.layer === layer && r.step === step);
  if (!s) throw new Error(`coordSlope: no slope for ${parametrization} ${layer} at step ${step}`);
  return delta ? s.deltaSlope : s.slope;
}
