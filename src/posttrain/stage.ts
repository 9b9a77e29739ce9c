/**
 * What the fine-tuning stages that start from a run share (sft.ts, dpo.ts): their settings and
 * the checks on them, the opening of the run directory (a resume takes the run's own settings),
 * the built-in tasks' train and held-out problems, AdamW + the LR schedule + the training core and
 * their runLoop, the run's config.json, and the held-out exact-match evaluation. A stage keeps only what makes it
 * that stage: how its examples are rendered, its loss and its evaluation figures.
 */
import type { ChatTemplate } from '../chat/template.js';
import type { Batch } from '../data/dataset.js';
import { generateTaskExamples, parseTaskList, scoreAnswers, taskConversation, taskCapacity, type TaskExample, type TaskName, type TaskScore } from '../chat/tasks.js';
import type { TransformerConfig } from '../models/config.js';
import { generateText } from '../models/generate.js';
import type { TransformerLM } from '../models/transformer.js';
import { loraConfig, type LoRAConfig } from '../nn/lora.js';
import { adapterPath, saveAdapter } from './merge.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DEFAULT_TRAIN_CONFIG, validateTrainConfig, type TrainConfig } from '../train/config.js';
import { LrSchedule, TrainingCore, type LossFunction } from '../train/loop.js';
import { openRun, runFiles, runLoop, type RunControl, type RunFiles, type RunHooks, type RunLoopSpec, type RunOutcome } from '../train/run-loop.js';
import { modelOptimizer, type RunGenerators } from '../train/setup.js';
import type { RunConfig } from '../train/trainer.js';

/** The settings a stage shares with pretraining, meaning there what they mean here (one validator checks them). */
const TRAIN_KEYS = ['name', 'outDir', 'batchSize', 'maxSteps', 'maxTime', 'lr', 'minLr', 'warmupSteps', 'weightDecay', 'beta1', 'beta2', 'gradClip', 'evalInterval', 'evalIters', 'logInterval', 'seed'] as const;

/** The settings of a stage that fine-tunes a run's model on a JSONL file and/or the built-in tasks. */
export interface StageConfig extends Pick<TrainConfig, (typeof TRAIN_KEYS)[number]> {
  /** The run directory of the model to start from. */
  base: string;
  baseCheckpoint: 'best' | 'latest';
  /** The stage's JSONL file (SFT: conversations; DPO: preference pairs), or null. */
  data: string | null;
  /** The built-in verifiable tasks to train on (chat/tasks.ts), e.g. ['addition', 'reverse']. */
  tasks: string[];
  /** Training problems per task. */
  taskExamples: number;
  /** Held-out problems per task for the exact-match evaluation (and the validation loss). */
  evalExamples: number;
  /** Share of the JSONL examples held out for the validation loss. */
  valFraction: number;
  /** LoRA adapters instead of full fine-tuning (null: every weight trains). */
  lora: LoRAConfig | null;
}

/** How a stage names itself and its inputs in error messages. */
export interface StageNames {
  /** 'sft', 'dpo': the prefix of its errors and the key of its settings in config.json. */
  stage: string;
  /** What --base is, e.g. 'the pretrained model'. */
  base: string;
  /** An example --data file name, e.g. 'conversations.jsonl'. */
  data: string;
}

/**
 * `defaults` overlaid with `layers` (undefined values skipped, unknown keys rejected) and checked:
 * a base run, some data, known tasks, a valid LoRA configuration, and optimisation settings that
 * pretraining's validator accepts (they mean the same thing there).
 */
export function resolveStageConfig<C extends StageConfig>(names: StageNames, defaults: Readonly<C>, layers: readonly Partial<C>[]): C {
  const { stage } = names;
  const keys = Object.keys(defaults);
  // The defaults are frozen: tasks gets an array of its own.
  const c = { ...defaults, tasks: [] as string[] } as C;
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      if (!keys.includes(key)) throw new Error(`unknown ${stage} config key '${key}' (known: ${keys.join(', ')})`);
      (c as unknown as Record<string, unknown>)[key] = value;
    }
  }
  if (!c.base) throw new Error(`${stage}: --base (the run directory of ${names.base}) is required`);
  if (c.data === null && c.tasks.length === 0) throw new Error(`${stage}: no training data: give --data ${names.data} and/or --task addition,reverse,…`);
  // Checked as a list (unknown or repeated names); none at all is fine next to --data.
  if (c.tasks.length > 0) c.tasks = parseTaskList(c.tasks.join(','));
  if (c.lora) c.lora = loraConfig(c.lora);
  if (c.baseCheckpoint !== 'best' && c.baseCheckpoint !== 'latest') throw new Error(`${stage}: baseCheckpoint must be 'best' or 'latest', got '${String(c.baseCheckpoint)}'`);
  for (const k of ['taskExamples', 'evalExamples'] as const) if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`${stage}: ${k} must be a positive integer, got ${c[k]}`);
  if (!(c.valFraction > 0 && c.valFraction < 1)) throw new Error(`${stage}: valFraction must be in (0, 1), got ${c.valFraction}`);
  validateTrainConfig({ ...DEFAULT_TRAIN_CONFIG, ...pickTrainKeys(c) });
  return c;
}

function pickTrainKeys(c: StageConfig): Partial<TrainConfig> {
  return Object.fromEntries(TRAIN_KEYS.map((k) => [k, c[k]]));
}

export interface StageOptions extends RunControl {
  resume?: boolean;
  hooks?: RunHooks;
}

/** What every stage returns besides its own figures. */
export interface StageResult extends RunOutcome {
  files: RunFiles;
  /** The fine-tuned model, in eval mode. */
  model: TransformerLM;
  tokenizer: Tokenizer;
  /** Held-out exact match per task at the end (empty where the run has no tasks). */
  taskScores: Record<string, TaskScore>;
}

/**
 * The run directory of a stage: a new one, or (`resume`) an existing one whose latest checkpoint
 * is returned and whose own settings replace `input`, so that a resume continues the same
 * experiment whatever flags it was given.
 */
export function openStage<C extends StageConfig>(stage: string, resolve: (input: Partial<C>) => C, input: Partial<C>, resume: boolean) {
  let config = resolve(input);
  const files = runFiles(config.outDir, config.name);
  const checkpoint = openRun(files, resume);
  // The stage's own settings, except where the run is: a copied run directory keeps its new name.
  if (checkpoint) config = resolve({ ...(checkpoint.meta.config as Record<string, Partial<C>>)[stage], name: config.name, outDir: config.outDir });
  return { config, files, checkpoint, resuming: resume };
}

/**
 * The last `valFraction` (at least one) of a JSONL file's examples, held out; the file must hold
 * at least two so that both parts are non-empty.
 */
export function holdOutTail<T>(stage: string, all: readonly T[], valFraction: number, file: string, noun: string): { train: T[]; val: T[] } {
  if (all.length < 2) throw new Error(`${stage}: ${file} has ${all.length} ${noun}(s); at least 2 are needed (one held out)`);
  const nVal = Math.max(1, Math.round(all.length * valFraction));
  return { train: all.slice(0, all.length - nVal), val: all.slice(all.length - nVal) };
}

/** One task's problems: `train` from its train split, `test` (held out) from its test split. */
export interface TaskProblems {
  task: TaskName;
  /** The task's seed; stages derive further streams from it (e.g. DPO's wrong answers). */
  seed: number;
  train: TaskExample[];
  test: TaskExample[];
}

/** The configured tasks' problems, disjoint by construction (a problem's split is a function of the problem). */
export function taskProblems(config: StageConfig): TaskProblems[] {
  return (config.tasks as TaskName[]).map((task, k) => {
    const seed = config.seed + 101 * (k + 1);
    const train = generateTaskExamples(task, 'train', Math.min(config.taskExamples, taskCapacity(task, 'train')), seed);
    const test = generateTaskExamples(task, 'test', Math.min(config.evalExamples, taskCapacity(task, 'test')), seed + 1);
    return { task, seed, train, test };
  });
}

/** What a stage has set up before it trains: its run directory, settings, model and streams. */
export interface StageSetup {
  files: RunFiles;
  config: StageConfig;
  /** What config.json holds (`stageRunConfig`). */
  runConfig: unknown;
  /** The checkpoint a resume starts from, or null. */
  checkpoint: ReturnType<typeof openRun>;
  model: TransformerLM;
  generators: RunGenerators;
  options: StageOptions;
}

/**
 * A stage's training: AdamW over the parameters that train (a LoRA model's adapters; μP groups
 * kept), the core that steps it with the stage's loss on a warmup + cosine schedule, and `run`,
 * its runLoop with everything but the data and the evaluation filled in. The tokens a step trains
 * on are its batches' targets (those not −100).
 */
export function stageTraining<B extends Batch>(setup: StageSetup, loss: LossFunction<TransformerLM, B>) {
  const { files, config, runConfig, checkpoint, model, generators, options } = setup;
  const optimizer = modelOptimizer(model, config);
  const schedule = new LrSchedule({ lr: config.lr, minLr: config.minLr, warmupSteps: config.warmupSteps, maxSteps: config.maxSteps });
  const core = new TrainingCore({ model, optimizer, schedule, loss, gradClip: config.gradClip });
  const run = async (spec: Pick<RunLoopSpec<TransformerLM, B>, 'nextBatches' | 'evaluate' | 'dataTokens'>): Promise<RunOutcome> => {
    const outcome = await runLoop({
      files,
      runConfig,
      model,
      optimizer,
      core,
      generators,
      settings: config,
      tokensIn: (batches) => batches.reduce((n, b) => n + countTargets(b.y), 0),
      resumeFrom: checkpoint,
      hooks: options.hooks,
      control: options,
      ...spec,
    });
    // A LoRA run also leaves its adapters on their own (PEFT's adapter file), from the last step.
    const lora = (runConfig as { lora?: LoRAConfig | null }).lora;
    if (lora) saveAdapter(model, adapterPath(files.dir), lora);
    return outcome;
  };
  return { core, run };
}

/**
 * The run's config.json: `train` in pretraining's layout (what loadRun, the dashboard and
 * `tensorlm sample` read), the model, its LoRA configuration, and the stage's own settings under
 * its name.
 */
export function stageRunConfig<K extends string, C extends StageConfig>(stage: K, config: C, model: TransformerConfig, lora: LoRAConfig | null): RunConfig & { [key in K]: C } {
  const train = { ...DEFAULT_TRAIN_CONFIG, ...pickTrainKeys(config), blockSize: model.maxSeqLen, tokenizer: 'chat', data: config.data ?? `tasks:${config.tasks.join(',')}` };
  return { stage, train, model, lora, [stage]: config } as RunConfig & { [key in K]: C };
}

/** Most tokens an answer may take in the exact-match evaluation (the built-in answers are short). */
const MAX_ANSWER_TOKENS = 24;

/** Greedy answers to the held-out problems, scored by exact match. */
export function scoreTask(model: TransformerLM, template: ChatTemplate, examples: readonly TaskExample[]): TaskScore {
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

/** The held-out exact-match evaluation of a run's tasks, at each evaluation and at the end. */
export class HeldOutTasks {
  #last: { step: number; scores: Record<string, TaskScore> } | null = null;

  constructor(
    readonly model: TransformerLM,
    readonly template: ChatTemplate,
    readonly problems: readonly TaskProblems[],
  ) {}

  /** Scores every task; the metrics `TASK/accuracy` and its 95% Wilson interval `TASK/low`, `TASK/high`. */
  evaluate(step: number): Record<string, number> {
    const metrics: Record<string, number> = {};
    const scores = this.#score();
    for (const [task, s] of Object.entries(scores)) {
      metrics[`${task}/accuracy`] = s.accuracy;
      metrics[`${task}/low`] = s.low;
      metrics[`${task}/high`] = s.high;
    }
    this.#last = { step, scores };
    return metrics;
  }

  /** The scores at `step`: the final evaluation's when it was at that step, else scored now (a run stopped between evaluations). */
  final(step: number): Record<string, TaskScore> {
    return this.#last !== null && this.#last.step === step ? this.#last.scores : this.#score();
  }

  #score(): Record<string, TaskScore> {
    const scores: Record<string, TaskScore> = {};
    for (const { task, test } of this.problems) scores[task] = scoreTask(this.model, this.template, test);
    return scores;
  }
}

/** Targets that count in a batch's loss (those not −100). */
function countTargets(y: Tensor): number {
  const data = y.toTypedArray() as Int32Array;
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== -100) n++;
  return n;
}
