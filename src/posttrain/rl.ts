/**
 * Reinforcement learning on the verifiable tasks (`tensorlm rl`): GRPO (Shao et al. 2024,
 * DeepSeekMath), as nanochat's RL stage runs it on GSM8K, at the scale of the built-in tasks.
 *
 * Each step: draw `promptsPerStep` problems from the tasks' training split; sample a group of
 * `groupSize` replies to each from the policy (temperature sampling, one batched decode per
 * problem, up to <|assistant_end|>); reward 1 for an exact-match answer that ends properly, 0
 * otherwise; advantages normalised within each group (groupAdvantages); one gradient step on the
 * clipped GRPO objective with a k3 KL term to the frozen starting model (grpoLoss). With one
 * update per batch of samples the old policy is the current one (the ratio is 1 and clipping
 * never binds), as in nanochat; the clip stays in the loss for correctness if that changes.
 *
 * A group whose replies are all right or all wrong has zero advantages: it teaches nothing, which
 * is why the stage starts from an SFT run that gets some answers right.
 *
 * Evaluation: greedy exact match on each task's held-out split (valLoss = 1 − the mean accuracy,
 * so the best checkpoint is the most accurate one) and the mean reward of the rollouts since the
 * last evaluation (trainLoss = 1 − that).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { ChatTemplate } from '../chat/template.js';
import { exactMatch, generateTaskExamples, parseTaskList, taskConversation, taskSplitSize, type TaskExample, type TaskName } from '../chat/tasks.js';
import { muParamGroups } from '../models/mup.js';
import type { TransformerLM } from '../models/transformer.js';
import { AdamW } from '../optim/adam.js';
import { tensor } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DEFAULT_TRAIN_CONFIG, validateTrainConfig } from '../train/config.js';
import { LrSchedule, TrainingCore } from '../train/loop.js';
import { openRun, prepareRunDirectory, runFiles, runLoop, type RunControl, type RunFiles, type RunHooks, type RunOutcome } from '../train/run-loop.js';
import { runGenerators } from '../train/setup.js';
import { loadRun, type RunConfig } from '../train/trainer.js';
import { groupAdvantages, grpoLoss, tokenLogProbs } from './losses.js';
import { scoreTask } from './sft.js';

export interface RlConfig {
  name: string;
  outDir: string;
  /** The run to start from: normally an SFT run (its tokenizer has the chat tokens). */
  base: string;
  baseCheckpoint: 'best' | 'latest';
  /** Built-in verifiable tasks (chat/tasks.ts) that give the prompts and the rewards. */
  tasks: string[];
  /** Held-out problems per task for the exact-match evaluation. */
  evalExamples: number;
  /** Problems per step. */
  promptsPerStep: number;
  /** Replies sampled per problem (GRPO's group, G). */
  groupSize: number;
  /** Most tokens of a reply (the built-in answers are a few characters). */
  maxNewTokens: number;
  /** Sampling temperature of the rollouts. */
  temperature: number;
  maxSteps: number;
  maxTime: number | null;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  gradClip: number;
  /** GRPO's ε: the policy ratio is clipped to [1 − ε, 1 + ε]. */
  clipEps: number;
  /** β of the KL penalty to the starting model (0: none, and no reference forward). */
  klBeta: number;
  evalInterval: number;
  logInterval: number;
  seed: number;
}

export const DEFAULT_RL_CONFIG: Readonly<RlConfig> = Object.freeze({
  name: 'rl',
  outDir: DEFAULT_TRAIN_CONFIG.outDir,
  base: '',
  baseCheckpoint: 'best',
  tasks: [],
  evalExamples: 100,
  promptsPerStep: 8,
  groupSize: 8,
  maxNewTokens: 12,
  temperature: 1,
  maxSteps: 100,
  maxTime: null,
  // Small: each step's samples come from the policy itself, and a large step makes the next
  // samples (and their rewards) swing; DeepSeekMath used 1e-6 at 7B, tiny models tolerate more.
  lr: 1e-4,
  minLr: 1e-5,
  warmupSteps: 5,
  weightDecay: 0,
  beta1: DEFAULT_TRAIN_CONFIG.beta1,
  beta2: DEFAULT_TRAIN_CONFIG.beta2,
  gradClip: DEFAULT_TRAIN_CONFIG.gradClip,
  clipEps: 0.2,
  klBeta: 0.04,
  evalInterval: 25,
  logInterval: 5,
  seed: DEFAULT_TRAIN_CONFIG.seed,
});

const KEYS = Object.keys(DEFAULT_RL_CONFIG) as (keyof RlConfig)[];

export function resolveRlConfig(...layers: Partial<RlConfig>[]): RlConfig {
  const c: RlConfig = { ...DEFAULT_RL_CONFIG, tasks: [] };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      if (!KEYS.includes(key as keyof RlConfig)) throw new Error(`unknown rl config key '${key}' (known: ${KEYS.join(', ')})`);
      (c as unknown as Record<string, unknown>)[key] = value;
    }
  }
  if (!c.base) throw new Error('rl: --base (the run to start from, normally an SFT run) is required');
  if (c.tasks.length === 0) throw new Error('rl: no tasks: give --task addition,reverse,… (the rewards come from their exact answers)');
  c.tasks = parseTaskList(c.tasks.join(','));
  if (c.baseCheckpoint !== 'best' && c.baseCheckpoint !== 'latest') throw new Error(`rl: baseCheckpoint must be 'best' or 'latest', got '${String(c.baseCheckpoint)}'`);
  for (const k of ['evalExamples', 'promptsPerStep', 'maxNewTokens'] as const) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`rl: ${k} must be a positive integer, got ${c[k]}`);
  if (!Number.isInteger(c.groupSize) || c.groupSize < 2) throw new Error(`rl: groupSize must be an integer ≥ 2 (advantages compare replies within a group), got ${c.groupSize}`);
  if (!(c.temperature > 0 && Number.isFinite(c.temperature))) throw new Error(`rl: temperature must be a positive number (the rollouts must explore), got ${c.temperature}`);
  if (!(c.clipEps > 0 && c.clipEps < 1)) throw new Error(`rl: clipEps must be in (0, 1), got ${c.clipEps}`);
  if (!(c.klBeta >= 0 && Number.isFinite(c.klBeta))) throw new Error(`rl: klBeta must be a non-negative number, got ${c.klBeta}`);
  const { name, outDir, maxSteps, maxTime, lr, minLr, warmupSteps, weightDecay, beta1, beta2, gradClip, evalInterval, logInterval, seed } = c;
  validateTrainConfig({ ...DEFAULT_TRAIN_CONFIG, name, outDir, maxSteps, maxTime, lr, minLr, warmupSteps, weightDecay, beta1, beta2, gradClip, evalInterval, logInterval, seed });
  return c;
}

/** One step's rollouts, ready for the GRPO loss. */
export interface RolloutBatch {
  /** Prompt + reply ids without the last token [R, T] (R = prompts × group size), padded. */
  x: Tensor;
  /** The next tokens [R, T]. */
  y: Tensor;
  /** 1 where y is a reply token (those the policy chose), float32 [R, T]. */
  mask: Tensor;
  /** Group-normalised advantages [R]. */
  advantages: Tensor;
  /** The frozen starting model's token log-probs [R, T], or null without a KL term. */
  referenceLogProbs: Tensor | null;
  /** The rewards [R] (for the logs). */
  rewards: number[];
  /** Reply tokens in the batch. */
  replyTokens: number;
}

/**
 * `groupSize` sampled replies to one prompt, decoded together (the prompt repeated as a batch):
 * each reply's tokens up to and including <|assistant_end|>, or all maxNewTokens without one.
 */
export function sampleGroup(model: TransformerLM, prompt: readonly number[], groupSize: number, options: { maxNewTokens: number; temperature: number; end: number; generator: Generator }): number[][] {
  const ids = new Int32Array(groupSize * prompt.length);
  for (let g = 0; g < groupSize; g++) ids.set(prompt, g * prompt.length);
  const replies: number[][] = Array.from({ length: groupSize }, () => []);
  const open = new Set(replies.keys());
  const stream = model.generateStream(tensor(ids, { shape: [groupSize, prompt.length] }), { maxNewTokens: options.maxNewTokens, temperature: options.temperature, generator: options.generator });
  try {
    for (const next of stream) {
      for (const g of open) {
        replies[g].push(next[g]);
        if (next[g] === options.end) open.delete(g);
      }
      if (open.size === 0) break;
    }
  } finally {
    stream.return?.(undefined);
  }
  return replies;
}

/** The reward of a reply: 1 for the exact answer followed by <|assistant_end|>, else 0. */
export function replyReward(tokenizer: Tokenizer, reply: readonly number[], end: number, answer: string): number {
  if (reply[reply.length - 1] !== end) return 0;
  return exactMatch(tokenizer.decode(reply.slice(0, -1)), answer) ? 1 : 0;
}

/** GRPO's loss on a batch of rollouts, as the training core takes it (the policy's log-probs with a graph). */
export function rolloutLoss(options: { clipEps: number; klBeta: number }): (model: TransformerLM, batch: RolloutBatch) => Tensor {
  return (model, b) =>
    grpoLoss({ logProbs: tokenLogProbs(model.forward(b.x).logits, b.y, b.mask), referenceLogProbs: b.referenceLogProbs, advantages: b.advantages, mask: b.mask }, options).loss;
}

export interface RlResult extends RunOutcome {
  files: RunFiles;
  model: TransformerLM;
  tokenizer: Tokenizer;
  config: RunConfig & { rl: RlConfig };
  taskScores: Record<string, ReturnType<typeof scoreTask>>;
}

export interface RlOptions extends RunControl {
  resume?: boolean;
  hooks?: RunHooks;
}

export async function rl(input: Partial<RlConfig>, options: RlOptions = {}): Promise<RlResult> {
  let config = resolveRlConfig(input);
  const files = runFiles(config.outDir, config.name);
  const resuming = options.resume === true;
  const checkpoint = openRun(files, resuming);
  // The run's own config wins: a resume continues the same experiment.
  if (checkpoint) config = resolveRlConfig((checkpoint.meta.config as { rl: RlConfig }).rl);

  const base = loadRun(config.base, config.baseCheckpoint);
  const tokenizer = base.tokenizer;
  const template = new ChatTemplate(tokenizer);
  // The policy starts as the base model; the reference is a second copy that never trains.
  const model = base.model;
  const reference = config.klBeta > 0 ? loadRun(config.base, config.baseCheckpoint).model : null;
  model.train();

  const tasks = config.tasks as TaskName[];
  const trainProblems: TaskExample[] = [];
  const heldOut = new Map<TaskName, TaskExample[]>();
  tasks.forEach((task, k) => {
    const seed = config.seed + 101 * (k + 1);
    trainProblems.push(...generateTaskExamples(task, 'train', Math.min(10_000, taskSplitSize(task, 'train')), seed));
    heldOut.set(task, generateTaskExamples(task, 'test', Math.min(config.evalExamples, taskSplitSize(task, 'test')), seed + 1));
  });
  const promptIds = (ex: TaskExample) => template.renderForGeneration(taskConversation(ex).messages.slice(0, -1));
  const context = model.config.maxSeqLen;

  const runConfig = {
    stage: 'rl',
    train: { ...DEFAULT_TRAIN_CONFIG, name: config.name, outDir: config.outDir, maxSteps: config.maxSteps, maxTime: config.maxTime, lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, evalInterval: config.evalInterval, logInterval: config.logInterval, seed: config.seed, batchSize: config.promptsPerStep * config.groupSize, blockSize: context, tokenizer: 'chat', data: `tasks:${tasks.join(',')}` },
    model: model.config,
    lora: base.config.lora ?? null,
    rl: config,
  };
  prepareRunDirectory(files, runConfig, tokenizer, resuming);

  const gens = runGenerators(config.seed);
  const optimizer = new AdamW(
    muParamGroups(model, { lr: config.lr, weightDecay: config.weightDecay }).map((g) => ({ ...g, params: g.params.filter((p) => p.requiresGrad) })).filter((g) => g.params.length > 0),
    { lr: config.lr, betas: [config.beta1, config.beta2], weightDecay: config.weightDecay },
  );
  const schedule = new LrSchedule({ lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, maxSteps: config.maxSteps });
  const core = new TrainingCore({ model, optimizer, schedule, loss: rolloutLoss(config), gradClip: config.gradClip });

  let rewardSum = 0;
  let rewardCount = 0;
  /** Rollouts: problems drawn and replies sampled from gens.data, so a resumed run draws the same ones. */
  const rollouts = (): RolloutBatch => {
    const rows: { ids: number[]; promptLength: number }[] = [];
    const rewards: number[] = [];
    for (let p = 0; p < config.promptsPerStep; p++) {
      const problem = trainProblems[gens.data.randint(0, trainProblems.length)];
      const prompt = promptIds(problem);
      const maxNewTokens = Math.min(config.maxNewTokens, context - prompt.length);
      if (maxNewTokens < 1) throw new Error(`rl: a prompt of ${prompt.length} tokens leaves no room in the model's context of ${context}`);
      for (const reply of sampleGroup(model, prompt, config.groupSize, { maxNewTokens, temperature: config.temperature, end: template.assistantEnd, generator: gens.data })) {
        rows.push({ ids: [...prompt, ...reply], promptLength: prompt.length });
        rewards.push(replyReward(tokenizer, reply, template.assistantEnd, problem.answer));
      }
    }
    const width = Math.max(...rows.map((r) => r.ids.length - 1));
    const x = new Int32Array(rows.length * width);
    const y = new Int32Array(rows.length * width);
    const mask = new Float32Array(rows.length * width);
    let replyTokens = 0;
    rows.forEach((r, i) => {
      for (let t = 0; t + 1 < r.ids.length; t++) {
        x[i * width + t] = r.ids[t];
        y[i * width + t] = r.ids[t + 1];
        // Position t predicts token t + 1: the reply's tokens are those at promptLength and after.
        if (t + 1 >= r.promptLength) {
          mask[i * width + t] = 1;
          replyTokens++;
        }
      }
    });
    for (const r of rewards) rewardSum += r;
    rewardCount += rewards.length;
    const batch = { x: tensor(x, { shape: [rows.length, width] }), y: tensor(y, { shape: [rows.length, width] }), mask: new Tensor(mask, [rows.length, width]) };
    const referenceLogProbs = reference ? noGrad(() => tokenLogProbs(reference.forward(batch.x).logits, batch.y, batch.mask)) : null;
    return { ...batch, advantages: groupAdvantages(rewards, config.groupSize), referenceLogProbs, rewards, replyTokens };
  };

  let lastScores: { step: number; scores: RlResult['taskScores'] } | null = null;
  const evaluate = (step: number) => {
    const scores: RlResult['taskScores'] = {};
    const metrics: Record<string, number> = {};
    let accuracy = 0;
    for (const [task, examples] of heldOut) {
      const s = (scores[task] = scoreTask(model, template, examples));
      metrics[`${task}/accuracy`] = s.accuracy;
      metrics[`${task}/low`] = s.low;
      metrics[`${task}/high`] = s.high;
      accuracy += s.accuracy / heldOut.size;
    }
    const meanReward = rewardCount > 0 ? rewardSum / rewardCount : 0;
    metrics['reward/mean'] = meanReward;
    rewardSum = 0;
    rewardCount = 0;
    lastScores = { step, scores };
    return { trainLoss: 1 - meanReward, valLoss: 1 - accuracy, metrics };
  };

  const outcome = await runLoop({
    files,
    runConfig,
    model,
    optimizer,
    core,
    generators: gens,
    settings: { ...config, evalIters: 1 },
    nextBatches: () => [rollouts()],
    tokensIn: (batches) => batches.reduce((n, b) => n + b.replyTokens, 0),
    evaluate,
    resumeFrom: checkpoint,
    hooks: options.hooks,
    control: options,
  });
  model.eval();
  const final = lastScores as { step: number; scores: RlResult['taskScores'] } | null;
  let taskScores: RlResult['taskScores'] = {};
  if (final !== null && final.step === outcome.step) taskScores = final.scores;
  else for (const [task, examples] of heldOut) taskScores[task] = scoreTask(model, template, examples);
  return { ...outcome, files, model, tokenizer, config: runConfig as unknown as RlResult['config'], taskScores };
}
