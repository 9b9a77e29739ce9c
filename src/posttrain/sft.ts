/**
 * Supervised fine-tuning (`tensorlm sft`): a pretrained run's model learns to answer in the chat
 * format from conversations (JSONL) and/or the built-in verifiable tasks (chat/tasks.ts).
 *
 *   base run ─ tokenizer + chat special tokens (+ characters the data needs) ─ embeddings resized
 *   (new rows = the mean of the old ones) ─ optional LoRA adapters ─ runLoop (train/run-loop.ts)
 *   over padded (or, with pack, packed) batches of rendered conversations, loss on the assistant tokens only
 *
 * The loss is pretraining's next-token cross-entropy with every target outside an assistant
 * reply set to −100 (ignored): the mean over assistant tokens, which is `maskedCrossEntropy`
 * (posttrain/losses.ts) computed by the fused cross-entropy. Batches are padded (each
 * conversation starts at position 0 of its own row, and the padding only ever follows real
 * tokens, so causal attention never lets a real token see it) or, with `pack`, packed: the same
 * conversations share rows of the model's context, each with its own positions and attention
 * that never crosses into another (the model's positions/documentIds), so the step's loss and
 * gradients are the padded step's up to rounding, on fewer padded tokens.
 *
 * Evaluation: mean loss on training and held-out conversations, and for each task the exact-match
 * accuracy of greedy answers on its held-out split (with a 95% Wilson interval in the run's metrics).
 */
import type { Batch } from '../data/dataset.js';
import { CHAT_SPECIAL_TOKENS, ChatTemplate, type Conversation } from '../chat/template.js';
import { readConversations } from '../chat/jsonl.js';
import { taskConversation } from '../chat/tasks.js';
import { resolveConfig } from '../models/config.js';
import { TransformerLM } from '../models/transformer.js';
import { applyLoRA } from '../nn/lora.js';
import { noGrad } from '../autograd/grad-mode.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { Generator } from '../tensor/random.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DEFAULT_TRAIN_CONFIG } from '../train/config.js';
import { estimateLoss, languageModelLoss } from '../train/loop.js';
import { prepareRunDirectory } from '../train/run-loop.js';
import { runGenerators } from '../train/setup.js';
import { loadTransformerRun, type RunConfig } from '../train/trainer.js';
import { HeldOutTasks, holdOutTail, openStage, resolveStageConfig, stageRunConfig, stageTraining, taskProblems, type StageConfig, type StageOptions, type StageResult } from './stage.js';

export { scoreTask } from './stage.js';

/** The settings of `tensorlm sft`; `data` is a conversations JSONL file (`{"messages": [...]}` per line). */
export interface SftConfig extends StageConfig {
  /** Pack each step's conversations into rows of the model's context (packedBatch) instead of padding one per row. */
  pack: boolean;
}

/** Pretraining's defaults where they apply; a shorter run, a lower peak LR and no weight decay. */
export const DEFAULT_SFT_CONFIG: Readonly<SftConfig> = Object.freeze({
  name: 'sft',
  outDir: DEFAULT_TRAIN_CONFIG.outDir,
  base: '',
  baseCheckpoint: 'best',
  data: null,
  tasks: [],
  taskExamples: 2000,
  evalExamples: 100,
  valFraction: 0.1,
  batchSize: DEFAULT_TRAIN_CONFIG.batchSize,
  maxSteps: 500,
  maxTime: null,
  lr: 1e-3,
  minLr: 1e-4,
  warmupSteps: 20,
  weightDecay: 0,
  beta1: DEFAULT_TRAIN_CONFIG.beta1,
  beta2: DEFAULT_TRAIN_CONFIG.beta2,
  gradClip: DEFAULT_TRAIN_CONFIG.gradClip,
  evalInterval: 100,
  evalIters: 10,
  logInterval: DEFAULT_TRAIN_CONFIG.logInterval,
  seed: DEFAULT_TRAIN_CONFIG.seed,
  lora: null,
  pack: false,
});

const NAMES = { stage: 'sft', base: 'the pretrained model', data: 'conversations.jsonl' };

export function resolveSftConfig(...layers: Partial<SftConfig>[]): SftConfig {
  const c = resolveStageConfig(NAMES, DEFAULT_SFT_CONFIG, layers);
  if (typeof c.pack !== 'boolean') throw new Error(`sft: pack must be true or false, got ${String(c.pack)}`);
  return c;
}

/** One rendered conversation: its ids and which of them are trained on. */
export interface SftExample {
  ids: Int32Array;
  lossMask: Uint8Array;
}

/**
 * The rows `indices` of `examples` as one padded batch: x = ids[0..n−2], y = ids[1..n−1] where
 * the loss mask is 1 and −100 elsewhere (prompt tokens, padding). Rows are padded on the right to
 * the longest, so every real token sits at its own position and never attends to padding.
 */
export function paddedBatch(examples: readonly SftExample[], indices: readonly number[]): Batch {
  let width = 1;
  for (const i of indices) width = Math.max(width, examples[i].ids.length - 1);
  const x = new Int32Array(indices.length * width);
  const y = new Int32Array(indices.length * width).fill(-100);
  indices.forEach((i, row) => {
    const { ids, lossMask } = examples[i];
    const base = row * width;
    for (let t = 0; t + 1 < ids.length; t++) {
      x[base + t] = ids[t];
      if (lossMask[t + 1]) y[base + t] = ids[t + 1];
    }
  });
  return { x: tensor(x, { shape: [indices.length, width] }), y: tensor(y, { shape: [indices.length, width] }) };
}

/** 1 where a batch's target counts (not −100), 0 elsewhere: int32 [B, T], the mask log-prob losses take. */
export function targetMask(y: Tensor): Tensor {
  return tensor(Int32Array.from(y.toTypedArray() as Int32Array, (t) => (t === -100 ? 0 : 1)), { shape: y.shape.slice() });
}

/**
 * The rows `indices` of `examples` packed into rows of at most `width` tokens: first-fit by
 * decreasing length (each conversation takes ids.length − 1 inputs), so a row holds several
 * conversations one after the other. Inputs and targets are paddedBatch's; `positions` restart at
 * 0 with each conversation and `documentIds` number the conversations of a row (0, 1, …; the
 * trailing padding is −1 with positions 0.. of its own and targets −100). With them the model
 * computes each conversation as if it were alone, so the loss is paddedBatch's over the same
 * indices. The batch is as wide as its fullest row.
 */
export function packedBatch(examples: readonly SftExample[], indices: readonly number[], width: number): Batch & { positions: Tensor; documentIds: Tensor } {
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`packedBatch: width must be a positive integer, got ${width}`);
  const length = (i: number) => Math.max(0, examples[i].ids.length - 1);
  for (const i of indices) {
    if (examples[i] === undefined) throw new RangeError(`packedBatch: index ${i} is outside the ${examples.length} examples`);
    if (length(i) > width) throw new RangeError(`packedBatch: example ${i} has ${length(i)} input tokens, more than the row width ${width}`);
  }
  // Stable sort by decreasing length, then first fit: a classic bin-packing heuristic, deterministic for the same indices.
  const order = indices.map((i, k) => ({ i, k })).sort((a, b) => length(b.i) - length(a.i) || a.k - b.k);
  const rows: { fill: number; items: number[] }[] = [];
  for (const { i } of order) {
    const n = length(i);
    const row = rows.find((r) => r.fill + n <= width);
    if (row) {
      row.items.push(i);
      row.fill += n;
    } else rows.push({ fill: n, items: [i] });
  }
  const w = Math.max(1, ...rows.map((r) => r.fill));
  const size = rows.length * w;
  const x = new Int32Array(size);
  const y = new Int32Array(size).fill(-100);
  const positions = new Int32Array(size);
  const documentIds = new Int32Array(size).fill(-1);
  rows.forEach((row, r) => {
    let at = r * w;
    row.items.forEach((i, doc) => {
      const { ids, lossMask } = examples[i];
      for (let t = 0; t + 1 < ids.length; t++, at++) {
        x[at] = ids[t];
        if (lossMask[t + 1]) y[at] = ids[t + 1];
        positions[at] = t;
        documentIds[at] = doc;
      }
    });
    for (let p = 0; at < (r + 1) * w; at++, p++) positions[at] = p;
  });
  const shape = [rows.length, w];
  return { x: tensor(x, { shape }), y: tensor(y, { shape }), positions: tensor(positions, { shape }), documentIds: tensor(documentIds, { shape }) };
}

/** The model's vocabulary grown to `vocabSize`: old rows copied, new rows the mean of the old (tied head included). */
function resizedModel(base: TransformerLM, vocabSize: number, generator: Generator, dropoutGenerator: Generator): TransformerLM {
  const config = resolveConfig({ ...base.config, vocabSize });
  const model = new TransformerLM(config, { generator, dropoutGenerator });
  const target = model.stateDict();
  noGrad(() => {
    for (const [name, source] of Object.entries(base.stateDict())) {
      const dest = target[name];
      if (dest === undefined) throw new Error(`sft: the base model's '${name}' has no counterpart in the fine-tuning model`);
      const src = source.contiguous().toTypedArray() as Float32Array;
      const out = dest.storage as Float32Array;
      if (source.size === dest.size) {
        out.set(src, dest.offset);
        continue;
      }
      // An embedding or head [V, D] that grew: the new tokens start at the mean embedding, a
      // neutral point (random rows would make their logits arbitrary; zeros, a spike in the head).
      const [rows, cols] = source.shape;
      if (source.ndim !== 2 || dest.shape[1] !== cols || dest.shape[0] < rows) throw new Error(`sft: cannot resize '${name}' from [${source.shape.join(', ')}] to [${dest.shape.join(', ')}]`);
      out.set(src, dest.offset);
      const mean = new Float32Array(cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mean[c] += src[r * cols + c] / rows;
      for (let r = rows; r < dest.shape[0]; r++) out.set(mean, dest.offset + r * cols);
    }
  });
  return model;
}

export interface SftResult extends StageResult {
  config: RunConfig & { sft: SftConfig };
}

export type SftOptions = StageOptions;

export async function sft(input: Partial<SftConfig>, options: SftOptions = {}): Promise<SftResult> {
  const { config, files, checkpoint, resuming } = openStage('sft', resolveSftConfig, input, options.resume === true);

  // The data, as conversations: the JSONL file (its last valFraction held out) and the tasks'
  // train and test splits (disjoint by construction).
  const trainConvs: Conversation[] = [];
  const valConvs: Conversation[] = [];
  if (config.data !== null) {
    const { train, val } = holdOutTail('sft', readConversations(config.data), config.valFraction, config.data, 'conversation');
    trainConvs.push(...train);
    valConvs.push(...val);
  }
  const problems = taskProblems(config);
  for (const { train, test } of problems) {
    trainConvs.push(...train.map(taskConversation));
    valConvs.push(...test.map(taskConversation));
  }

  const base = loadTransformerRun(config.base, config.baseCheckpoint, `tensorlm ${NAMES.stage}`);
  let tokenizer: Tokenizer;
  if (resuming) tokenizer = loadTokenizer(files.tokenizer);
  else {
    tokenizer = base.tokenizer;
    // A char-level base knows only its corpus's characters: the data's others are added.
    if (tokenizer instanceof CharTokenizer) tokenizer = tokenizer.withCharacters([...trainConvs, ...valConvs].flatMap((c) => c.messages.map((m) => m.content)).join(''));
    tokenizer = tokenizer.withSpecialTokens(CHAT_SPECIAL_TOKENS);
  }
  const template = new ChatTemplate(tokenizer);
  const render = (convs: Conversation[], what: string): SftExample[] =>
    convs.map((conv, i) => {
      const r = template.render(conv);
      if (r.ids.length - 1 > base.model.config.maxSeqLen) throw new Error(`sft: ${what} conversation ${i + 1} is ${r.ids.length} tokens; the model's context is ${base.model.config.maxSeqLen}`);
      return { ids: Int32Array.from(r.ids), lossMask: r.lossMask };
    });
  const train = render(trainConvs, 'training');
  const val = render(valConvs, 'held-out');

  const gens = runGenerators(config.seed);
  const model = resizedModel(base.model, tokenizer.vocabSize, gens.init, gens.dropout);
  if (config.lora) {
    applyLoRA(model, { ...config.lora, generator: gens.init, dropoutGenerator: gens.dropout });
    // The new tokens' embeddings (chat special tokens, new characters) must be learnt: like PEFT's
    // modules_to_save, the embedding (and an untied head) train in full next to the adapters.
    if (tokenizer.vocabSize > base.tokenizer.vocabSize) {
      model.tokEmb.weight.requiresGrad = true;
      if (model.head) model.head.weight.requiresGrad = true;
    }
  }
  model.train();
  const runConfig = stageRunConfig('sft', config, model.config, config.lora);
  prepareRunDirectory(files, runConfig, tokenizer, resuming);

  const training = stageTraining({ files, config, runConfig, checkpoint, model, generators: gens, options }, languageModelLoss);
  // Packed or padded, a step draws the same conversations (the same random stream), so --pack changes the cost, not the run.
  const width = model.config.maxSeqLen;
  const sample = (from: readonly SftExample[], rng: Generator): Batch => {
    const indices = Array.from({ length: config.batchSize }, () => rng.randint(0, from.length));
    return config.pack ? packedBatch(from, indices, width) : paddedBatch(from, indices);
  };
  const tasks = new HeldOutTasks(model, template, problems);
  const evaluate = (step: number) => {
    const seed = config.seed + 7919 * (step + 1);
    const metrics = tasks.evaluate(step);
    return {
      trainLoss: estimateLoss(model, languageModelLoss, (rng) => sample(train, rng), config.evalIters, seed),
      valLoss: estimateLoss(model, languageModelLoss, (rng) => sample(val, rng), config.evalIters, seed + 1),
      metrics,
    };
  };

  const outcome = await training.run({
    nextBatches: () => [sample(train, gens.data)],
    evaluate,
    dataTokens: { train: train.reduce((n, e) => n + e.ids.length, 0), val: val.reduce((n, e) => n + e.ids.length, 0) },
  });
  model.eval();
  // The final evaluation scored the tasks already, unless the run stopped between evaluations.
  return { ...outcome, files, model, tokenizer, config: runConfig, taskScores: tasks.final(outcome.step) };
}
