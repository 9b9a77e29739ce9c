/**
 * Supervised fine-tuning (`tensorlm sft`): a pretrained run's model learns to answer in the chat
 * format from conversations (JSONL) and/or the built-in verifiable tasks (chat/tasks.ts).
 *
 *   base run ─ tokenizer + chat special tokens (+ characters the data needs) ─ embeddings resized
 *   (new rows = the mean of the old ones) ─ optional LoRA adapters ─ runLoop (train/run-loop.ts)
 *   over padded batches of rendered conversations, loss on the assistant tokens only
 *
 * The loss is pretraining's next-token cross-entropy with every target outside an assistant
 * reply set to −100 (ignored): the mean over assistant tokens, which is `maskedCrossEntropy`
 * (posttrain/losses.ts) computed by the fused cross-entropy. Batches are padded, not packed:
 * each conversation starts at position 0 of its own row, and the padding only ever follows
 * real tokens, so causal attention never lets a real token see it.
 *
 * Evaluation: mean loss on training and held-out conversations, and for each task the exact-match
 * accuracy of greedy answers on its held-out split (with a 95% Wilson interval in the run's metrics).
 */
import type { Batch } from '../data/dataset.js';
import { CHAT_SPECIAL_TOKENS, ChatTemplate, type Conversation } from '../chat/template.js';
import { readConversations } from '../chat/jsonl.js';
import { generateTaskExamples, parseTaskList, scoreAnswers, taskConversation, taskSplitSize, type TaskExample, type TaskName } from '../chat/tasks.js';
import { resolveConfig, type TransformerConfig } from '../models/config.js';
import { generateText } from '../models/generate.js';
import { muParamGroups } from '../models/mup.js';
import { TransformerLM } from '../models/transformer.js';
import { applyLoRA, loraConfig, type LoRAConfig } from '../nn/lora.js';
import { AdamW } from '../optim/adam.js';
import { noGrad } from '../autograd/grad-mode.js';
import { tensor } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DEFAULT_TRAIN_CONFIG, validateTrainConfig } from '../train/config.js';
import { estimateLoss, languageModelLoss, LrSchedule, TrainingCore } from '../train/loop.js';
import { openRun, prepareRunDirectory, runFiles, runLoop, type RunControl, type RunFiles, type RunHooks, type RunOutcome } from '../train/run-loop.js';
import { runGenerators } from '../train/setup.js';
import { loadRun, type RunConfig } from '../train/trainer.js';

export interface SftConfig {
  name: string;
  outDir: string;
  /** The run directory of the pretrained model. */
  base: string;
  baseCheckpoint: 'best' | 'latest';
  /** A conversations JSONL file (`{"messages": [...]}` per line), or null. */
  data: string | null;
  /** The built-in verifiable tasks to train on (chat/tasks.ts), e.g. ['addition', 'reverse']. */
  tasks: string[];
  /** Training problems per task. */
  taskExamples: number;
  /** Held-out problems per task for the exact-match evaluation (and the validation loss). */
  evalExamples: number;
  /** Share of the JSONL conversations held out for the validation loss. */
  valFraction: number;
  batchSize: number;
  maxSteps: number;
  maxTime: number | null;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  gradClip: number;
  evalInterval: number;
  evalIters: number;
  logInterval: number;
  seed: number;
  /** LoRA adapters instead of full fine-tuning (null: every weight trains). */
  lora: LoRAConfig | null;
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
});

const KEYS = Object.keys(DEFAULT_SFT_CONFIG) as (keyof SftConfig)[];

export function resolveSftConfig(...layers: Partial<SftConfig>[]): SftConfig {
  const c: SftConfig = { ...DEFAULT_SFT_CONFIG, tasks: [] };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      if (!KEYS.includes(key as keyof SftConfig)) throw new Error(`unknown sft config key '${key}' (known: ${KEYS.join(', ')})`);
      (c as unknown as Record<string, unknown>)[key] = value;
    }
  }
  if (!c.base) throw new Error('sft: --base (the run directory of the pretrained model) is required');
  if (c.data === null && c.tasks.length === 0) throw new Error('sft: no training data: give --data conversations.jsonl and/or --task addition,reverse,…');
  c.tasks = parseTaskList(c.tasks.join(','));
  if (c.lora) c.lora = loraConfig(c.lora);
  if (c.baseCheckpoint !== 'best' && c.baseCheckpoint !== 'latest') throw new Error(`sft: baseCheckpoint must be 'best' or 'latest', got '${String(c.baseCheckpoint)}'`);
  for (const k of ['taskExamples', 'evalExamples'] as const) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`sft: ${k} must be a positive integer, got ${c[k]}`);
  if (!(c.valFraction > 0 && c.valFraction < 1)) throw new Error(`sft: valFraction must be in (0, 1), got ${c.valFraction}`);
  // The optimisation settings mean what they mean for pretraining: one validator.
  validateTrainConfig({ ...DEFAULT_TRAIN_CONFIG, ...pickTrainKeys(c) });
  return c;
}

function pickTrainKeys(c: SftConfig): Partial<typeof DEFAULT_TRAIN_CONFIG> {
  const { name, outDir, batchSize, maxSteps, maxTime, lr, minLr, warmupSteps, weightDecay, beta1, beta2, gradClip, evalInterval, evalIters, logInterval, seed } = c;
  return { name, outDir, batchSize, maxSteps, maxTime, lr, minLr, warmupSteps, weightDecay, beta1, beta2, gradClip, evalInterval, evalIters, logInterval, seed };
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

export interface SftResult extends RunOutcome {
  files: RunFiles;
  model: TransformerLM;
  tokenizer: Tokenizer;
  config: RunConfig & { sft: SftConfig };
  /** Held-out exact match per task at the end (null where the run has no tasks). */
  taskScores: Record<string, ReturnType<typeof scoreAnswers>>;
}

export interface SftOptions extends RunControl {
  resume?: boolean;
  hooks?: RunHooks;
}

/** Most tokens an answer may take in the exact-match evaluation (the built-in answers are short). */
const MAX_ANSWER_TOKENS = 24;

/** Greedy answers to the held-out problems, scored by exact match. */
export function scoreTask(model: TransformerLM, template: ChatTemplate, examples: readonly TaskExample[]): ReturnType<typeof scoreAnswers> {
  const outputs = examples.map(
    (ex) =>
      generateText(model, template.tokenizer, template.renderForGeneration(taskConversation(ex).messages.slice(0, -1)), {
        maxNewTokens: MAX_ANSWER_TOKENS,
        temperature: 0,
        stopTokens: [template.assistantEnd],
      }).text,
  );
  return scoreAnswers(outputs, examples);
}

export async function sft(input: Partial<SftConfig>, options: SftOptions = {}): Promise<SftResult> {
  let config = resolveSftConfig(input);
  const files = runFiles(config.outDir, config.name);
  const resuming = options.resume === true;
  const checkpoint = openRun(files, resuming);
  // The run's own config wins: a resume continues the same experiment.
  if (checkpoint) config = resolveSftConfig((checkpoint.meta.config as { sft: SftConfig }).sft);

  // The data, as conversations: the JSONL file (its last valFraction held out) and the tasks'
  // train and test splits (disjoint by construction).
  const trainConvs: Conversation[] = [];
  const valConvs: Conversation[] = [];
  if (config.data !== null) {
    const all = readConversations(config.data);
    const nVal = Math.max(1, Math.round(all.length * config.valFraction));
    if (all.length < 2) throw new Error(`sft: ${config.data} has ${all.length} conversation(s); at least 2 are needed (one held out)`);
    trainConvs.push(...all.slice(0, all.length - nVal));
    valConvs.push(...all.slice(all.length - nVal));
  }
  const heldOut = new Map<TaskName, TaskExample[]>();
  (config.tasks as TaskName[]).forEach((task, k) => {
    const seed = config.seed + 101 * (k + 1);
    // A small task (one problem per word) may have fewer distinct problems than asked: all of them then.
    trainConvs.push(...generateTaskExamples(task, 'train', Math.min(config.taskExamples, taskSplitSize(task, 'train')), seed).map(taskConversation));
    const test = generateTaskExamples(task, 'test', Math.min(config.evalExamples, taskSplitSize(task, 'test')), seed + 1);
    heldOut.set(task, test);
    valConvs.push(...test.map(taskConversation));
  });

  const base = loadRun(config.base, config.baseCheckpoint);
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
  const modelConfig: TransformerConfig = model.config;
  const runConfig = { stage: 'sft', train: { ...DEFAULT_TRAIN_CONFIG, ...pickTrainKeys(config), blockSize: modelConfig.maxSeqLen, tokenizer: 'chat', data: config.data ?? `tasks:${config.tasks.join(',')}` }, model: modelConfig, lora: config.lora, sft: config };
  prepareRunDirectory(files, runConfig, tokenizer, resuming);

  const optimizer = new AdamW(
    muParamGroups(model, { lr: config.lr, weightDecay: config.weightDecay }).map((g) => ({ ...g, params: g.params.filter((p) => p.requiresGrad) })).filter((g) => g.params.length > 0),
    { lr: config.lr, betas: [config.beta1, config.beta2], weightDecay: config.weightDecay },
  );
  const schedule = new LrSchedule({ lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, maxSteps: config.maxSteps });
  const core = new TrainingCore({ model, optimizer, schedule, loss: languageModelLoss, gradClip: config.gradClip });
  const sample = (from: readonly SftExample[], rng: Generator) => paddedBatch(from, Array.from({ length: config.batchSize }, () => rng.randint(0, from.length)));
  let lastScores: { step: number; scores: SftResult['taskScores'] } | null = null;
  const evaluate = (step: number) => {
    const seed = config.seed + 7919 * (step + 1);
    const metrics: Record<string, number> = {};
    const scores: SftResult['taskScores'] = {};
    for (const [task, examples] of heldOut) {
      const s = (scores[task] = scoreTask(model, template, examples));
      metrics[`${task}/accuracy`] = s.accuracy;
      metrics[`${task}/low`] = s.low;
      metrics[`${task}/high`] = s.high;
    }
    lastScores = { step, scores };
    return {
      trainLoss: estimateLoss(model, languageModelLoss, (rng) => sample(train, rng), config.evalIters, seed),
      valLoss: estimateLoss(model, languageModelLoss, (rng) => sample(val, rng), config.evalIters, seed + 1),
      metrics,
    };
  };

  const outcome = await runLoop({
    files,
    runConfig,
    model,
    optimizer,
    core,
    generators: gens,
    settings: { ...config, maxTime: config.maxTime },
    nextBatches: () => [sample(train, gens.data)],
    // Tokens trained on: the assistant targets.
    tokensIn: (batches) => batches.reduce((n, b) => n + countTargets(b.y), 0),
    evaluate,
    resumeFrom: checkpoint,
    hooks: options.hooks,
    control: options,
    dataTokens: { train: train.reduce((n, e) => n + e.ids.length, 0), val: val.reduce((n, e) => n + e.ids.length, 0) },
  });
  model.eval();
  // The final evaluation scored the tasks already, unless the run stopped between evaluations.
  const final = lastScores as { step: number; scores: SftResult['taskScores'] } | null;
  let taskScores: SftResult['taskScores'] = {};
  if (final !== null && final.step === outcome.step) taskScores = final.scores;
  else for (const [task, examples] of heldOut) taskScores[task] = scoreTask(model, template, examples);
  return { ...outcome, files, model, tokenizer, config: runConfig as SftResult['config'], taskScores };
}

function countTargets(y: Tensor): number {
  const data = y.toTypedArray() as Int32Array;
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== -100) n++;
  return n;
}
