/**
 * Direct Preference Optimization (`tensorlm dpo`; Rafailov et al. 2023): a chat run's model (an
 * SFT run) learns to prefer one reply over another from preference pairs, with no reward model and
 * no sampling: the frozen starting model is the reference, and the loss (posttrain/losses.ts,
 * `dpoLoss`) raises the policy's log-ratio of the chosen reply over the rejected one relative to
 * the reference's.
 *
 *   base run (chat tokens required) ─ policy = its model (its LoRA adapters train, or new ones with
 *   --lora-rank, or every weight) ─ reference = a second copy, frozen ─ runLoop over batches of B
 *   pairs: 2B padded rows, one policy forward, one reference forward under noGrad
 *
 * Pairs come from a preferences JSONL file (`readPreferences`; its last valFraction held out)
 * and/or the built-in tasks, where chosen = the exact answer and rejected = a plausible wrong one
 * (`wrongAnswer`); the tasks' held-out pairs come from their test splits.
 *
 * Dropout is off in both models (TRL's `disable_dropout`): the policy stays in eval mode while it
 * trains, so that before the first update it computes exactly what the reference computes (the
 * loss is log 2) and the implicit rewards measure the weights, not dropout noise.
 *
 * Evaluation: the DPO loss on training pairs and on the held-out pairs (trainLoss / valLoss), the
 * preference accuracy and mean reward margin on both, and each task's held-out exact match.
 */
import { noGrad } from '../autograd/grad-mode.js';
import type { Batch } from '../data/dataset.js';
import { readPreferences, type PreferencePair } from '../chat/jsonl.js';
import { CHAT_SPECIAL_TOKENS, ChatTemplate } from '../chat/template.js';
import { taskConversation, type TaskExample } from '../chat/tasks.js';
import type { TransformerLM } from '../models/transformer.js';
import { applyLoRA } from '../nn/lora.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadTokenizer } from '../tokenizers/load.js';
import { prepareRunDirectory, type Evaluation } from '../train/run-loop.js';
import { runGenerators } from '../train/setup.js';
import { loadTransformerRun, type RunConfig } from '../train/trainer.js';
import { dpoLoss, sequenceLogProbs, type PreferenceLogProbs } from './losses.js';
import { DEFAULT_SFT_CONFIG, paddedBatch, targetMask, type SftExample } from './sft.js';
import { HeldOutTasks, holdOutTail, openStage, resolveStageConfig, stageRunConfig, stageTraining, taskProblems, type StageConfig, type StageOptions, type StageResult } from './stage.js';

/** The settings of `tensorlm dpo`; `data` is a preferences JSONL file (`{"prompt", "chosen", "rejected"}` per line). */
export interface DpoConfig extends StageConfig {
  /** β of eq. 7: how strongly the policy is held to the reference (smaller: further it may move). */
  beta: number;
  /** ε of conservative DPO: the assumed probability that a pair's labels are swapped, in [0, 0.5]. */
  labelSmoothing: number;
}

// SFT's settings but its `pack`: DPO's pairs are padded, and a key in its defaults would be accepted and ignored.
const { pack: _sftOnly, ...SFT_STAGE_DEFAULTS } = DEFAULT_SFT_CONFIG;

/**
 * SFT's defaults where they apply, with a 10× lower learning rate: DPO starts from a model that
 * already answers, its loss can be lowered by pushing both replies' likelihoods down, and a large
 * step moves the policy far from the reference, where β's implicit KL constraint holds only
 * weakly (Zephyr and Tülu 2 go further: SFT at 2e-5, DPO at 5e-7). β = 0.1 is the paper's and TRL's.
 */
export const DEFAULT_DPO_CONFIG: Readonly<DpoConfig> = Object.freeze({
  ...SFT_STAGE_DEFAULTS,
  name: 'dpo',
  maxSteps: 200,
  lr: 1e-4,
  minLr: 1e-5,
  warmupSteps: 10,
  evalInterval: 50,
  beta: 0.1,
  labelSmoothing: 0,
});

const NAMES = { stage: 'dpo', base: 'the chat model, normally a tensorlm sft run', data: 'prefs.jsonl' };

export function resolveDpoConfig(...layers: Partial<DpoConfig>[]): DpoConfig {
  const c = resolveStageConfig(NAMES, DEFAULT_DPO_CONFIG, layers);
  if (!(Number.isFinite(c.beta) && c.beta > 0)) throw new Error(`dpo: beta must be a finite number > 0, got ${c.beta}`);
  if (!(c.labelSmoothing >= 0 && c.labelSmoothing <= 0.5)) throw new Error(`dpo: labelSmoothing must be in [0, 0.5], got ${c.labelSmoothing}`);
  return c;
}

/** Fisher–Yates, in place, from `rng`. */
function shuffle<T>(items: T[], rng: Generator): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.randint(0, i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Addition's wrong answers: off by one or two in the units, or a carry lost or invented in the tens or hundreds. */
const ADDITION_OFFSETS = [1, 2, 10, 100];

/**
 * A plausible wrong answer to a task problem, drawn from `rng`; never the answer:
 * - addition: the sum ± 1, 2, 10 or 100 (the sign flipped where the result would be negative);
 * - count: the count ± 1 (+1 when it is 0);
 * - reverse, sort: half the time the word itself (the answer's letters, untransformed: the mistake
 *   of copying the input), else a shuffle of the answer's letters; where either equals the answer
 *   (a palindrome, an already sorted word) the other is used, and a word of one repeated letter
 *   gets one letter more.
 */
export function wrongAnswer(example: TaskExample, rng: Generator): string {
  const { task, prompt, answer } = example;
  let wrong: string;
  if (task === 'addition') {
    const offset = ADDITION_OFFSETS[rng.randint(0, ADDITION_OFFSETS.length)] * (rng.randint(0, 2) === 0 ? -1 : 1);
    const sum = Number(answer);
    wrong = String(sum + offset >= 0 ? sum + offset : sum - offset);
  } else if (task === 'count') {
    const n = Number(answer);
    wrong = String(n === 0 || rng.randint(0, 2) === 1 ? n + 1 : n - 1);
  } else {
    const word = prompt.slice(prompt.indexOf(': ') + 2);
    const copy = rng.randint(0, 2) === 0;
    if (copy && word !== answer) wrong = word;
    else if (new Set(answer).size === 1) wrong = answer + answer[0];
    else {
      // At least two distinct letters: a shuffle differs from the answer with probability ≥ 1/2.
      do wrong = shuffle([...answer], rng).join('');
      while (wrong === answer);
    }
  }
  if (wrong === answer) throw new Error(`wrongAnswer: internal error: '${wrong}' is the answer to '${prompt}'`);
  return wrong;
}

/** Preference pairs from task problems: chosen = the answer, rejected = `wrongAnswer` (seeded). */
export function taskPreferencePairs(examples: readonly TaskExample[], seed: number): PreferencePair[] {
  const rng = new Generator(seed);
  return examples.map((ex) => {
    const [user, assistant] = taskConversation(ex).messages;
    return { prompt: [user], chosen: assistant.content, rejected: wrongAnswer(ex, rng) };
  });
}

/** A rendered pair: the prompt followed by each reply, the loss mask on the reply (its tokens and <|assistant_end|>). */
export interface RenderedPair {
  chosen: SftExample;
  rejected: SftExample;
}

/** `renderForGeneration(prompt) + renderReply(reply)` for both replies: the whole conversation, as SFT renders it. */
export function renderPair(template: ChatTemplate, pair: PreferencePair): RenderedPair {
  const prompt = template.renderForGeneration(pair.prompt);
  const side = (reply: string): SftExample => {
    const replyIds = template.renderReply(reply);
    const ids = new Int32Array(prompt.length + replyIds.length);
    ids.set(prompt);
    ids.set(replyIds, prompt.length);
    return { ids, lossMask: new Uint8Array(ids.length).fill(1, prompt.length) };
  };
  return { chosen: side(pair.chosen), rejected: side(pair.rejected) };
}

/** B pairs as 2B padded rows: rows 0..B−1 the chosen replies, rows B..2B−1 the rejected ones. */
export interface PreferenceBatch extends Batch {
  /** [2B, T]: 1 where `y` is a reply token (where `y` is not −100). */
  mask: Tensor;
  /** B. */
  pairs: number;
}

/** The pairs `indices` of `pairs` as one batch (padded on the right, as SFT's batches are). */
export function preferenceBatch(pairs: readonly RenderedPair[], indices: readonly number[]): PreferenceBatch {
  const rows = [...indices.map((i) => pairs[i].chosen), ...indices.map((i) => pairs[i].rejected)];
  const { x, y } = paddedBatch(rows, rows.map((_, r) => r));
  return { x, y, mask: targetMask(y), pairs: indices.length };
}

/**
 * log π(reply | prompt) of both replies under the policy (one forward of the 2B rows, with a
 * graph) and under the reference (the same rows under noGrad: it is never trained).
 */
export function preferenceLogProbs(policy: TransformerLM, reference: TransformerLM, batch: PreferenceBatch): PreferenceLogProbs {
  const n = batch.pairs;
  const policyLp = sequenceLogProbs(policy.forward(batch.x).logits, batch.y, batch.mask);
  const referenceLp = noGrad(() => sequenceLogProbs(reference.forward(batch.x).logits, batch.y, batch.mask));
  return {
    policyChosen: policyLp.narrow(0, 0, n),
    policyRejected: policyLp.narrow(0, n, n),
    referenceChosen: referenceLp.narrow(0, 0, n),
    referenceRejected: referenceLp.narrow(0, n, n),
  };
}

/** DPO figures over a set of pairs. */
export interface PreferenceStats {
  /** The mean DPO loss. */
  loss: number;
  /** The share of pairs whose chosen reply has the larger log-ratio to the reference (strictly). */
  accuracy: number;
  /** The mean reward margin β·(chosen log-ratio − rejected log-ratio). */
  margin: number;
}

export interface DpoRunResult extends StageResult {
  config: RunConfig & { dpo: DpoConfig };
  /** The frozen reference model (the base run's model, unchanged). */
  reference: TransformerLM;
  /** Held-out pairs' figures at the end. */
  heldOut: PreferenceStats;
}

export type DpoRunOptions = StageOptions;

export async function dpo(input: Partial<DpoConfig>, options: DpoRunOptions = {}): Promise<DpoRunResult> {
  const { config, files, checkpoint, resuming } = openStage('dpo', resolveDpoConfig, input, options.resume === true);

  const base = loadTransformerRun(config.base, config.baseCheckpoint, `tensorlm ${NAMES.stage}`);
  const missing = CHAT_SPECIAL_TOKENS.filter((t) => !Object.hasOwn(base.tokenizer.specialTokens, t));
  if (missing.length > 0) throw new Error(`dpo: ${config.base} is not a chat model (its tokenizer lacks ${missing.join(' ')}); run sft first: tensorlm sft --base ${config.base} …, then tensorlm dpo --base <the sft run>`);
  const tokenizer = resuming ? loadTokenizer(files.tokenizer) : base.tokenizer;
  const template = new ChatTemplate(tokenizer);
  const render = (pairs: readonly PreferencePair[], what: string): RenderedPair[] =>
    pairs.map((pair, i) => {
      let r: RenderedPair;
      try {
        r = renderPair(template, pair);
      } catch (e) {
        throw new Error(`dpo: ${what} pair ${i + 1}: ${e instanceof Error ? e.message : String(e)}`);
      }
      const longest = Math.max(r.chosen.ids.length, r.rejected.ids.length);
      if (longest - 1 > base.model.config.maxSeqLen) throw new Error(`dpo: ${what} pair ${i + 1} is ${longest} tokens; the model's context is ${base.model.config.maxSeqLen}`);
      return r;
    });

  // The pairs: the JSONL file's (its last valFraction held out) and the tasks' (held out: their test split).
  // (concat, not push(...): a large file's pairs would overflow the call stack as arguments.)
  let { train, val } = config.data === null ? { train: [], val: [] } : holdOutTail('dpo', render(readPreferences(config.data), config.data), config.valFraction, config.data, 'preference pair');
  const problems = taskProblems(config);
  for (const { task, seed, train: trainProblems, test } of problems) {
    train = train.concat(render(taskPreferencePairs(trainProblems, seed + 2), `${task} training`));
    val = val.concat(render(taskPreferencePairs(test, seed + 3), `${task} held-out`));
  }

  const gens = runGenerators(config.seed);
  // The policy: the base model as loaded (a LoRA run's adapters are its trainable parameters).
  const model = base.model;
  const baseLora = base.config.lora ?? null;
  if (config.lora) {
    if (baseLora) throw new Error(`dpo: ${config.base} already has LoRA adapters (rank ${baseLora.rank}), which DPO trains; drop --lora-rank`);
    applyLoRA(model, { ...config.lora, generator: gens.init, dropoutGenerator: gens.dropout });
  }
  const reference = loadTransformerRun(config.base, config.baseCheckpoint, `tensorlm ${NAMES.stage}`).model.requiresGrad_(false);
  reference.eval();
  model.eval(); // deliberately: no dropout in the policy either (see the top of this file)
  const runConfig = stageRunConfig('dpo', config, model.config, config.lora ?? baseLora);
  prepareRunDirectory(files, runConfig, tokenizer, resuming);

  const dpoOptions = { beta: config.beta, labelSmoothing: config.labelSmoothing };
  const training = stageTraining({ files, config, runConfig, checkpoint, model, generators: gens, options }, (m: TransformerLM, b: PreferenceBatch) => dpoLoss(preferenceLogProbs(m, reference, b), dpoOptions).loss);

  /** Exact figures over `indices`, in batches of batchSize, without gradients. */
  const stats = (pairs: readonly RenderedPair[], indices: readonly number[]): PreferenceStats => {
    let loss = 0;
    let wins = 0;
    let margin = 0;
    noGrad(() => {
      for (let start = 0; start < indices.length; start += config.batchSize) {
        const chunk = indices.slice(start, start + config.batchSize);
        const r = dpoLoss(preferenceLogProbs(model, reference, preferenceBatch(pairs, chunk)), dpoOptions);
        loss += r.loss.item() * chunk.length;
        wins += Math.round(r.accuracy * chunk.length);
        for (const m of r.margins.toTypedArray()) margin += m;
      }
    });
    return { loss: loss / indices.length, accuracy: wins / indices.length, margin: margin / indices.length };
  };
  // The training figures come from one fixed sample of training pairs, the held-out ones from
  // every held-out pair, so that evaluations are comparable from step to step.
  const trainProbe = shuffle(Array.from(train.keys()), new Generator(config.seed + 7919)).slice(0, config.evalIters * config.batchSize);
  const valAll = Array.from(val.keys());
  const tasks = new HeldOutTasks(model, template, problems);
  let last: { step: number; heldOut: PreferenceStats } | null = null;
  const evaluate = (step: number): Evaluation => {
    const onTrain = stats(train, trainProbe);
    const heldOut = stats(val, valAll);
    last = { step, heldOut };
    return {
      trainLoss: onTrain.loss,
      valLoss: heldOut.loss,
      metrics: {
        'preference/val-accuracy': heldOut.accuracy,
        'preference/val-margin': heldOut.margin,
        'preference/train-accuracy': onTrain.accuracy,
        'preference/train-margin': onTrain.margin,
        ...tasks.evaluate(step),
      },
    };
  };

  const outcome = await training.run({
    nextBatches: () => [preferenceBatch(train, Array.from({ length: config.batchSize }, () => gens.data.randint(0, train.length)))],
    evaluate,
    dataTokens: { train: pairTokens(train), val: pairTokens(val) },
  });
  const final = last as { step: number; heldOut: PreferenceStats } | null;
  const heldOut = final !== null && final.step === outcome.step ? final.heldOut : stats(val, valAll);
  return { ...outcome, files, model, tokenizer, config: runConfig, taskScores: tasks.final(outcome.step), reference, heldOut };
}

function pairTokens(pairs: readonly RenderedPair[]): number {
  return pairs.reduce((n, p) => n + p.chosen.ids.length + p.rejected.ids.length, 0);
}
