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
 * last evaluation (trainLoss = 1 − that); `rollouts/groups` is the mean number of groups drawn a
 * step and `rollouts/informative` the share of them whose rewards differ (the others have zero
 * advantages: with dynamicSampling they are drawn past).
 */
import { noGrad } from '../autograd/grad-mode.js';
import { ChatTemplate } from '../chat/template.js';
import { exactMatch, taskConversation, type TaskExample } from '../chat/tasks.js';
import type { TransformerLM } from '../models/transformer.js';
import { tensor } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DEFAULT_TRAIN_CONFIG } from '../train/config.js';
import { prepareRunDirectory } from '../train/run-loop.js';
import { runGenerators } from '../train/setup.js';
import { loadTransformerRun, type RunConfig } from '../train/trainer.js';
import { groupAdvantages, grpoLoss, tokenLogProbs } from './losses.js';
import { paddedBatch, targetMask, type SftExample } from './sft.js';
import { HeldOutTasks, openStage, resolveStageConfig, stageRunConfig, stageTraining, taskProblems, type StageConfig, type StageOptions, type StageResult } from './stage.js';

/**
 * RL's settings: a stage's (stage.ts), where `batchSize` is the problems per step (each sampled
 * `groupSize` times), `taskExamples` the training problems per task the prompts come from, and
 * `data` and `lora` are unused (the rewards need the tasks' exact answers; adapters come from SFT).
 */
export interface RlConfig extends StageConfig {
  /** Replies sampled per problem (GRPO's group, G). */
  groupSize: number;
  /** Most tokens of a reply (the built-in answers are a few characters). */
  maxNewTokens: number;
  /** Sampling temperature of the rollouts. */
  temperature: number;
  /** GRPO's ε: the policy ratio is clipped to [1 − ε, 1 + ε]. */
  clipEps: number;
  /** β of the KL penalty to the starting model (0: none, and no reference forward). */
  klBeta: number;
  /**
   * DAPO's dynamic sampling (Yu et al. 2025): a group whose replies all get the same reward has
   * zero advantages and adds nothing to the gradient, so such groups are left out and more
   * problems are drawn, up to `DYNAMIC_SAMPLING_DRAWS` × batchSize a step, until the step has
   * batchSize groups that teach something. False: every drawn group is kept (plain GRPO).
   */
  dynamicSampling: boolean;
}

/** With dynamic sampling, the most problems a step draws, as a multiple of its batch size. */
export const DYNAMIC_SAMPLING_DRAWS = 4;

export const DEFAULT_RL_CONFIG: Readonly<RlConfig> = Object.freeze({
  name: 'rl',
  outDir: DEFAULT_TRAIN_CONFIG.outDir,
  base: '',
  baseCheckpoint: 'best',
  data: null,
  tasks: [],
  // Problems are cheap (only their answers are checked): enough that a run rarely sees one twice.
  taskExamples: 100_000,
  evalExamples: 100,
  valFraction: 0.1,
  batchSize: 8,
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
  dynamicSampling: false,
  evalInterval: 25,
  evalIters: 1,
  logInterval: 5,
  seed: DEFAULT_TRAIN_CONFIG.seed,
  lora: null,
});

const NAMES = { stage: 'rl', base: 'the run to start from (normally an SFT run)', data: '(rl takes no file: the rewards need --task)' };

export function resolveRlConfig(...layers: Partial<RlConfig>[]): RlConfig {
  const c = resolveStageConfig(NAMES, DEFAULT_RL_CONFIG, layers);
  if (c.data !== null || c.tasks.length === 0) throw new Error('rl: give --task addition,reverse,… (the rewards come from their exact answers; a --data file has none)');
  if (c.lora !== null) throw new Error('rl: LoRA adapters come from the base run (tensorlm sft --lora-rank …); rl trains whatever the base run trains');
  if (!Number.isInteger(c.groupSize) || c.groupSize < 2) throw new Error(`rl: groupSize must be an integer ≥ 2 (advantages compare replies within a group), got ${c.groupSize}`);
  if (!Number.isInteger(c.maxNewTokens) || c.maxNewTokens < 1) throw new Error(`rl: maxNewTokens must be a positive integer, got ${c.maxNewTokens}`);
  if (!(c.temperature > 0 && Number.isFinite(c.temperature))) throw new Error(`rl: temperature must be a positive number (the rollouts must explore), got ${c.temperature}`);
  if (!(c.clipEps > 0 && c.clipEps < 1)) throw new Error(`rl: clipEps must be in (0, 1), got ${c.clipEps}`);
  if (!(c.klBeta >= 0 && Number.isFinite(c.klBeta))) throw new Error(`rl: klBeta must be a non-negative number, got ${c.klBeta}`);
  if (typeof c.dynamicSampling !== 'boolean') throw new Error(`rl: dynamicSampling must be true or false, got ${String(c.dynamicSampling)}`);
  return c;
}

/** One step's rollouts, ready for the GRPO loss. */
export interface RolloutBatch {
  /** Prompt + reply ids without the last token [R, T] (R = prompts × group size), padded. */
  x: Tensor;
  /** The next tokens [R, T]; −100 outside the replies (so they count as the step's targets). */
  y: Tensor;
  /** 1 where y is a reply token (those the policy chose): targetMask(y), int32 [R, T]. */
  mask: Tensor;
  /** Group-normalised advantages [R]. */
  advantages: Tensor;
  /** The frozen starting model's token log-probs [R, T], or null without a KL term. */
  referenceLogProbs: Tensor | null;
  /** The rewards [R] (for the logs). */
  rewards: number[];
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

export interface RlResult extends StageResult {
  config: RunConfig & { rl: RlConfig };
}

export type RlOptions = StageOptions;

export async function rl(input: Partial<RlConfig>, options: RlOptions = {}): Promise<RlResult> {
  const { config, files, checkpoint, resuming } = openStage('rl', resolveRlConfig, input, options.resume === true);
  const base = loadTransformerRun(config.base, config.baseCheckpoint, `tensorlm ${NAMES.stage}`);
  const tokenizer = base.tokenizer;
  const template = new ChatTemplate(tokenizer);
  // The policy starts as the base model; the reference is a second copy that never trains.
  const model = base.model;
  const reference = config.klBeta > 0 ? loadTransformerRun(config.base, config.baseCheckpoint, `tensorlm ${NAMES.stage}`).model : null;
  model.train();
  const problems = taskProblems(config);
  const promptIds = (ex: TaskExample) => template.renderForGeneration(taskConversation(ex).messages.slice(0, -1));
  const context = model.config.maxSeqLen;

  const runConfig = stageRunConfig('rl', config, model.config, base.config.lora ?? null);
  prepareRunDirectory(files, runConfig, tokenizer, resuming);
  const gens = runGenerators(config.seed);
  const training = stageTraining({ files, config, runConfig, checkpoint, model, generators: gens, options }, rolloutLoss(config));

  let rewardSum = 0;
  // Since the last evaluation: steps, groups drawn (each groupSize replies), and those whose rewards differ (they teach something).
  let rolloutSteps = 0;
  let groupsDrawn = 0;
  let groupsInformative = 0;
  /**
   * Rollouts: problems drawn and replies sampled from gens.data, so a resumed run draws the same
   * ones. With dynamic sampling, groups whose rewards are all equal are drawn past (at most
   * DYNAMIC_SAMPLING_DRAWS × batchSize problems); should none of them differ, the last group is
   * kept, so the step still has its KL term. The mean reward counts every reply sampled.
   */
  const rollouts = (): RolloutBatch => {
    const rows: SftExample[] = [];
    const rewards: number[] = [];
    const draws = config.dynamicSampling ? DYNAMIC_SAMPLING_DRAWS * config.batchSize : config.batchSize;
    let last: { rows: SftExample[]; rewards: number[] } | null = null;
    for (let drawn = 0; drawn < draws && rewards.length < config.batchSize * config.groupSize; drawn++) {
      // A task, then one of its problems: each task gets its share (a pooled list would be mostly additions).
      const { train } = problems[gens.data.randint(0, problems.length)];
      const problem = train[gens.data.randint(0, train.length)];
      const prompt = promptIds(problem);
      const maxNewTokens = Math.min(config.maxNewTokens, context - prompt.length);
      if (maxNewTokens < 1) throw new Error(`rl: a prompt of ${prompt.length} tokens leaves no room in the model's context of ${context}`);
      const group: { rows: SftExample[]; rewards: number[] } = { rows: [], rewards: [] };
      for (const reply of sampleGroup(model, prompt, config.groupSize, { maxNewTokens, temperature: config.temperature, end: template.assistantEnd, generator: gens.data })) {
        // The loss covers the reply's tokens (those the policy chose), as SFT's covers the assistant's.
        const ids = Int32Array.from([...prompt, ...reply]);
        group.rows.push({ ids, lossMask: Uint8Array.from(ids, (_, t) => (t >= prompt.length ? 1 : 0)) });
        group.rewards.push(replyReward(tokenizer, reply, template.assistantEnd, problem.answer));
      }
      for (const r of group.rewards) rewardSum += r;
      last = group;
      groupsDrawn++;
      const informative = group.rewards.some((r) => r !== group.rewards[0]);
      if (informative) groupsInformative++;
      if (config.dynamicSampling && !informative) continue;
      rows.push(...group.rows);
      rewards.push(...group.rewards);
    }
    rolloutSteps++;
    if (rows.length === 0 && last !== null) {
      rows.push(...last.rows);
      rewards.push(...last.rewards);
    }
    const padded = paddedBatch(rows, rows.map((_, i) => i));
    const batch = { ...padded, mask: targetMask(padded.y) };
    const referenceLogProbs = reference ? noGrad(() => tokenLogProbs(reference.forward(batch.x).logits, batch.y, batch.mask)) : null;
    return { ...batch, advantages: groupAdvantages(rewards, config.groupSize), referenceLogProbs, rewards };
  };

  const tasks = new HeldOutTasks(model, template, problems);
  const evaluate = (step: number) => {
    const metrics = tasks.evaluate(step);
    const accuracy = problems.reduce((sum, { task }) => sum + metrics[`${task}/accuracy`], 0) / problems.length;
    const meanReward = groupsDrawn > 0 ? rewardSum / (groupsDrawn * config.groupSize) : 0;
    metrics['reward/mean'] = meanReward;
    metrics['rollouts/groups'] = rolloutSteps > 0 ? groupsDrawn / rolloutSteps : 0;
    metrics['rollouts/informative'] = groupsDrawn > 0 ? groupsInformative / groupsDrawn : 0;
    rewardSum = 0;
    rolloutSteps = 0;
    groupsDrawn = 0;
    groupsInformative = 0;
    return { trainLoss: 1 - meanReward, valLoss: 1 - accuracy, metrics };
  };

  const outcome = await training.run({ nextBatches: () => [rollouts()], evaluate });
  model.eval();
  return { ...outcome, files, model, tokenizer, config: runConfig, taskScores: tasks.final(outcome.step) };
}
