/** `tensorlm sft`, `tensorlm dpo`, `tensorlm rl` and `tensorlm chat`: fine-tuning stages over src/posttrain (thin: flags in, library call, lines out). */
import { basename, dirname, join } from 'node:path';
import { Command, Option, type OptionValues } from 'commander';
import { parseDuration } from '../../train/config.js';
import { DEFAULT_SFT_CONFIG, sft, type SftConfig, type SftResult } from '../../posttrain/sft.js';
import { DEFAULT_DPO_CONFIG, dpo, type DpoConfig, type DpoRunResult } from '../../posttrain/dpo.js';
import type { StageConfig, StageOptions, StageResult } from '../../posttrain/stage.js';
import { mergeRun } from '../../posttrain/merge.js';
import { DEFAULT_RL_CONFIG, DYNAMIC_SAMPLING_DRAWS, rl, type RlConfig, type RlResult } from '../../posttrain/rl.js';
import { createInterface } from 'node:readline';
import { quantizeOption } from '../quantize.js';
import { describeQuantization } from '../../models/quantize.js';
import type { QuantFormat } from '../../nn/quantized.js';
import { ChatSession, type ChatReplyOptions } from '../../models/chat.js';
import { SAMPLE_SEPARATOR } from './train.js';
import { loadTransformerRun, type RunConfig } from '../../train/trainer.js';
import { fraction, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from '../args.js';
import { formatSeconds, runProgress } from '../progress.js';

function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** What the shared flags of a stage say that differs from stage to stage. */
interface StageFlagTexts {
  base: string;
  /** Absent: the stage takes no --data file (rl). */
  data?: string;
  batch: string;
  seed: string;
  evalIters: string;
  /** Absent: the stage adds no LoRA adapters (rl trains what its base trains). */
  loraRank?: string;
}

/** The flags of every stage on posttrain/stage.ts (sft, dpo), with the stage's defaults; read back by `stageInput`. */
function addStageOptions(command: Command, d: Readonly<StageConfig>, t: StageFlagTexts): Command {
  command.requiredOption('--base <dir>', t.base).addOption(new Option('--base-checkpoint <which>', 'checkpoint of the base run').choices(['best', 'latest']).default(d.baseCheckpoint));
  if (t.data !== undefined) command.option('--data <file>', t.data);
  command
    .option('--task <list>', 'built-in verifiable tasks, comma-separated: addition, reverse, sort, count')
    .option('--name <name>', 'run name: the run lives in <out-dir>/<name>/', d.name)
    .option('--out-dir <dir>', 'directory of runs', d.outDir)
    .addOption(new Option('--task-examples <n>', 'training problems per task').default(d.taskExamples).argParser(positiveInt('--task-examples')))
    .addOption(new Option('--eval-examples <n>', 'held-out problems per task (exact match, validation loss)').default(d.evalExamples).argParser(positiveInt('--eval-examples')))
    .addOption(new Option('--batch-size <n>', t.batch).default(d.batchSize).argParser(positiveInt('--batch-size')))
    .addOption(new Option('--max-steps <n>', 'optimizer steps').default(d.maxSteps).argParser(positiveInt('--max-steps')))
    .option('--max-time <duration>', 'time budget (e.g. 5m): the step count is planned from the measured speed')
    .addOption(new Option('--lr <x>', 'peak learning rate (AdamW)').default(d.lr).argParser(positiveNumber('--lr')))
    .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine decay').default(d.minLr).argParser(nonNegativeNumber('--min-lr')))
    .addOption(new Option('--warmup-steps <n>', 'linear warmup steps').default(d.warmupSteps).argParser(nonNegativeInt('--warmup-steps')))
    .addOption(new Option('--weight-decay <x>', 'decoupled weight decay of the weight matrices').default(d.weightDecay).argParser(nonNegativeNumber('--weight-decay')))
    .addOption(new Option('--grad-clip <x>', 'max global gradient norm (0 = off)').default(d.gradClip).argParser(nonNegativeNumber('--grad-clip')))
    .addOption(new Option('--eval-interval <n>', 'steps between evaluations (and checkpoints)').default(d.evalInterval).argParser(positiveInt('--eval-interval')))
    .addOption(new Option('--eval-iters <n>', t.evalIters).default(d.evalIters).argParser(positiveInt('--eval-iters')))
    .addOption(new Option('--seed <n>', t.seed).default(d.seed).argParser(nonNegativeInt('--seed')))
    .option('--resume', 'continue the run in <out-dir>/<name>/ from its latest checkpoint');
  if (t.loraRank === undefined) return command;
  return command
    .addOption(new Option('--lora-rank <r>', t.loraRank).argParser(positiveInt('--lora-rank')))
    .addOption(new Option('--lora-alpha <a>', 'LoRA scaling α (the update is scaled by α/r; default 2r)').argParser(positiveNumber('--lora-alpha')))
    .addOption(new Option('--lora-dropout <p>', 'dropout on the LoRA branch').default(0).argParser(fraction('--lora-dropout')))
    .option('--lora-targets <list>', "modules to adapt: comma-separated names (wq,wk,wv,wo,w1,w2,w3) or 'all-linear'", 'all-linear');
}

/** The flags of `addStageOptions` as a stage's settings. */
function stageInput(o: OptionValues): Partial<StageConfig> {
  return {
    base: o.base as string,
    baseCheckpoint: o.baseCheckpoint as 'best' | 'latest',
    name: o.name as string,
    outDir: o.outDir as string,
    data: (o.data as string | undefined) ?? null,
    tasks: o.task ? String(o.task).split(',').map((t) => t.trim()).filter(Boolean) : [],
    taskExamples: o.taskExamples as number,
    evalExamples: o.evalExamples as number,
    batchSize: o.batchSize as number,
    maxSteps: o.maxSteps as number,
    maxTime: o.maxTime === undefined ? null : parseDuration(o.maxTime as string),
    lr: o.lr as number,
    minLr: o.minLr as number,
    warmupSteps: o.warmupSteps as number,
    weightDecay: o.weightDecay as number,
    gradClip: o.gradClip as number,
    evalInterval: o.evalInterval as number,
    evalIters: o.evalIters as number,
    seed: o.seed as number,
    lora: o.loraRank ? { rank: o.loraRank as number, alpha: (o.loraAlpha as number | undefined) ?? 2 * (o.loraRank as number), dropout: o.loraDropout as number, targetModules: o.loraTargets === 'all-linear' ? 'all-linear' : String(o.loraTargets).split(',') } : null,
  };
}

/** How a stage's progress and results read; running it and showing them is the same for every stage. */
interface StageReport<C extends StageConfig, R extends StageResult> {
  stage: 'sft' | 'dpo' | 'rl';
  /** What a new run is doing: 'fine-tuning'. */
  verb: string;
  /** Said after the base run, e.g. ' with DPO (β 0.1)'. */
  method?: (c: C) => string;
  /** The stage's own figures of an evaluation, before the tasks' exact match. */
  evalFigures?: (metrics: Record<string, number>) => string;
  /** Lines after the 'finished' line. */
  finalLines?: (result: R) => string[];
}

async function runStage<C extends StageConfig, R extends StageResult & { config: RunConfig }>(
  input: Partial<C>,
  resume: boolean,
  train: (input: Partial<C>, options: StageOptions) => Promise<R>,
  report: StageReport<C, R>,
): Promise<void> {
  const settings = (config: unknown) => (config as Record<string, C>)[report.stage];
  const progress = runProgress<RunConfig>(
    ({ config, dir, parameters, resumed, trainTokens, valTokens }) => {
      const c = settings(config);
      const lora = (config as RunConfig).lora;
      return [
        `${resumed ? 'resuming' : report.verb} ${basename(dir)} from ${c.base}${report.method?.(c) ?? ''} (${lora ? `LoRA r=${lora.rank} α=${lora.alpha} on ${Array.isArray(lora.targetModules) ? lora.targetModules.join(',') : lora.targetModules}` : 'full'}, ${parameters.toLocaleString('en-US')} parameters) on ${[c.data, ...c.tasks].filter(Boolean).join(', ')}`,
        `${trainTokens.toLocaleString('en-US')} train / ${valTokens.toLocaleString('en-US')} held-out tokens; batch ${c.batchSize}, AdamW lr ${c.lr} → ${c.minLr}; run directory ${dir}`,
      ];
    },
    (r) => {
      const metrics = r.metrics ?? {};
      const tasks = Object.keys(metrics)
        .filter((k) => k.endsWith('/accuracy'))
        .map((k) => `${k.slice(0, -'/accuracy'.length)} ${percent(metrics[k])}`);
      const figures = report.evalFigures?.(metrics);
      return `step ${r.step}: train loss ${r.trainLoss.toFixed(4)}, val loss ${r.valLoss.toFixed(4)}${figures ? `; ${figures}` : ''}${tasks.length ? `; held-out exact match: ${tasks.join(', ')}` : ''}`;
    },
  );
  const started = performance.now();
  let result: R;
  try {
    result = await train(input, { resume, shouldStop: progress.interrupted, hooks: progress.hooks });
  } finally {
    progress.stop();
  }
  const c = settings(result.config);
  if (result.stoppedEarly === 'interrupted') {
    // The data flags too: a stage checks its flags before it reads the run's own settings back.
    const data = `${c.data ? ` --data ${c.data}` : ''}${c.tasks.length ? ` --task ${c.tasks.join(',')}` : ''}`;
    // Where the run is: a copied run directory's config still names the original.
    console.log(`stopped at step ${result.step}; checkpoint saved to ${result.files.latest}. Continue with: tensorlm ${report.stage} --name ${basename(result.files.dir)} --out-dir ${dirname(result.files.dir)} --base ${c.base}${data} --resume`);
    return;
  }
  if (result.alreadyFinished === true) console.log(`${result.files.dir} has already finished (step ${result.step} of ${result.plannedSteps}); nothing to train. Its held-out scores:`);
  else console.log(`\nfinished ${result.step} steps in ${formatSeconds((performance.now() - started) / 1000)}; best val loss ${result.bestValLoss?.toFixed(4) ?? '–'}`);
  for (const line of report.finalLines?.(result) ?? []) console.log(line);
  for (const [task, s] of Object.entries(result.taskScores)) console.log(`  ${task}: exact match ${s.correct}/${s.total} = ${percent(s.accuracy)} (95% CI ${percent(s.low)}–${percent(s.high)})`);
  console.log(`chat with it: tensorlm chat --run ${result.files.dir}`);
}

export function registerPosttrainCommands(program: Command): void {
  const sftCommand = program
    .command('sft')
    .description("supervised fine-tuning of a run's model on conversations (JSONL) and/or built-in tasks, in the chat format; loss on the assistant's tokens only");
  addStageOptions(sftCommand, DEFAULT_SFT_CONFIG, {
    base: 'run directory of the pretrained model (e.g. runs/shakespeare-char)',
    data: 'conversations JSONL: {"messages": [{"role": "user"|"assistant"|"system", "content": "…"}, …]} per line',
    batch: 'conversations per step (padded, or packed with --pack)',
    seed: 'random seed (task problems, batches, LoRA init)',
    evalIters: 'batches per split for the loss at each evaluation',
    loraRank: 'train LoRA adapters of this rank instead of every weight',
  })
    .option('--pack', "pack each step's conversations into rows of the model's context (own positions, no attention across them) instead of one padded row each")
    .action(async (_opts: unknown, command: Command) => runStage<SftConfig, SftResult>({ ...stageInput(command.opts()), pack: command.opts().pack === true }, command.opts().resume === true, sft, { stage: 'sft', verb: 'fine-tuning' }));

  const dpoCommand = program
    .command('dpo')
    .description('Direct Preference Optimization of a chat run (normally a tensorlm sft run) on preference pairs (JSONL) and/or built-in tasks (chosen: the answer; rejected: a plausible wrong one), against the frozen starting model');
  addStageOptions(dpoCommand, DEFAULT_DPO_CONFIG, {
    base: 'run directory of the chat model to start from (a tensorlm sft run: its tokenizer has the chat tokens)',
    data: 'preferences JSONL: {"prompt": "…" | [messages…], "chosen": "…", "rejected": "…"} per line',
    batch: 'preference pairs per step (two padded rows each)',
    seed: 'random seed (task problems, wrong answers, batches, LoRA init)',
    evalIters: 'batches of training pairs scored at each evaluation (the held-out pairs are all scored)',
    loraRank: "add LoRA adapters of this rank to a fully fine-tuned base (a LoRA base's own adapters train anyway)",
  })
    .addOption(new Option('--beta <x>', 'β: strength of the implicit KL constraint to the starting model').default(DEFAULT_DPO_CONFIG.beta).argParser(positiveNumber('--beta')))
    .addOption(new Option('--label-smoothing <x>', 'ε of conservative DPO: the assumed probability that a pair is mislabelled, in [0, 0.5]').default(DEFAULT_DPO_CONFIG.labelSmoothing).argParser(nonNegativeNumber('--label-smoothing')))
    .action(async (_opts: unknown, command: Command) => {
      const o = command.opts();
      await runStage<DpoConfig, DpoRunResult>({ ...stageInput(o), beta: o.beta as number, labelSmoothing: o.labelSmoothing as number }, o.resume === true, dpo, {
        stage: 'dpo',
        verb: 'preference-tuning',
        method: (c) => ` with DPO (β ${c.beta}${c.labelSmoothing > 0 ? `, label smoothing ${c.labelSmoothing}` : ''})`,
        evalFigures: (m) => `held-out preference accuracy ${percent(m['preference/val-accuracy'])}, margin ${m['preference/val-margin'].toFixed(4)} (train: ${percent(m['preference/train-accuracy'])}, ${m['preference/train-margin'].toFixed(4)})`,
        finalLines: (r) => [`  held-out preferences: accuracy ${percent(r.heldOut.accuracy)}, mean reward margin ${r.heldOut.margin.toFixed(4)}, DPO loss ${r.heldOut.loss.toFixed(4)}`],
      });
    });
}

/** Reads all of standard input (a piped prompt). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const CHAT_HELP = 'commands: /reset (forget the conversation), /temp <t> (sampling temperature; 0 = greedy), /pick <i> (with --candidates: continue with candidate i), /help, /quit (or Ctrl-D)';

async function runChat(opts: Record<string, unknown>): Promise<void> {
  // Quantized while it loads: the float32 model is never whole in memory.
  const { model, tokenizer, quantization } = loadTransformerRun(opts.run as string, opts.checkpoint as 'best' | 'latest', 'tensorlm chat', { quantize: opts.quantize as QuantFormat | undefined });
  if (quantization) process.stderr.write(`${describeQuantization(quantization)}\n`);
  const session = new ChatSession(model, tokenizer, { system: opts.system as string | undefined });
  const reply: ChatReplyOptions = { maxNewTokens: opts.maxNewTokens as number, temperature: opts.temperature as number, topK: opts.topK as number | undefined, topP: opts.topP as number | undefined, seed: opts.seed as number };
  const candidates = opts.candidates as number;
  const answer = (text: string) => {
    if (candidates === 1) {
      for (const chunk of session.send(text, reply)) process.stdout.write(chunk.text);
      process.stdout.write('\n');
      return;
    }
    // n replies from one batched run, printed like `tensorlm sample --num-samples`; the
    // conversation goes on with the first unless /pick chooses another.
    const replies = session.sendCandidates(text, candidates, reply);
    process.stdout.write(replies.map((r, i) => `[${i + 1}] ${r.text}\n`).join(`${SAMPLE_SEPARATOR}\n`));
  };
  // Scripts: one prompt from --prompt or a pipe, the reply on stdout.
  if (opts.prompt !== undefined || !process.stdin.isTTY) {
    const text = opts.prompt !== undefined ? (opts.prompt as string) : (await readStdin()).trim();
    if (text === '') throw new Error('chat: empty prompt (give --prompt or pipe text in)');
    answer(text);
    return;
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: 'you> ' });
  console.log(`chatting with ${opts.run as string} (${CHAT_HELP})`);
  rl.prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === '/quit' || text === '/exit') break;
    if (text === '/help') console.log(CHAT_HELP);
    else if (text === '/reset') {
      session.reset();
      console.log('(conversation reset)');
    } else if (text.startsWith('/temp')) {
      const t = Number(text.slice(5).trim());
      if (!(t >= 0 && Number.isFinite(t))) console.log('usage: /temp <non-negative number>');
      else {
        reply.temperature = t;
        console.log(`(temperature ${t})`);
      }
    } else if (text.startsWith('/pick')) {
      const i = Number(text.slice(5).trim());
      if (!(Number.isInteger(i) && i >= 1 && i <= candidates)) console.log(`usage: /pick <i>, i in 1..${candidates} (the candidates of the last reply; --candidates sets how many)`);
      else {
        try {
          session.chooseCandidate(i - 1);
          console.log(`(continuing with candidate ${i})`);
        } catch (error) {
          console.log((error as Error).message);
        }
      }
    } else if (text.startsWith('/')) console.log(`unknown command ${text}; ${CHAT_HELP}`);
    else if (text !== '') {
      process.stdout.write('assistant> ');
      answer(text);
    }
    rl.prompt();
  }
  rl.close();
}

export function registerChatCommand(program: Command): void {
  program
    .command('chat')
    .description('chat with a fine-tuned run (tensorlm sft): streamed replies, multi-turn with the KV cache kept; --prompt or a pipe for scripts')
    .requiredOption('--run <dir>', 'run directory of a model fine-tuned in the chat format')
    .option('--prompt <text>', 'one message; prints the reply and exits (also: pipe the message into stdin)')
    .option('--system <text>', 'a system message opening the conversation')
    .addOption(new Option('--max-new-tokens <n>', 'most tokens of a reply').default(256).argParser(positiveInt('--max-new-tokens')))
    .addOption(new Option('--temperature <t>', 'sampling temperature; 0 = greedy').default(0.8).argParser(nonNegativeNumber('--temperature')))
    .addOption(new Option('--top-k <k>', 'sample among the k most likely tokens').argParser(positiveInt('--top-k')))
    .addOption(new Option('--top-p <p>', 'nucleus sampling: the smallest set with probability ≥ p').argParser(positiveNumber('--top-p')))
    .addOption(new Option('--seed <n>', 'sampling seed').default(1).argParser(nonNegativeInt('--seed')))
    .addOption(new Option('--candidates <n>', 'candidate replies per message, drawn in one batched run and printed [1] … [n]; the conversation continues with the first (/pick <i> takes another)').default(1).argParser(positiveInt('--candidates')))
    .addOption(new Option('--checkpoint <which>', 'which checkpoint of the run').choices(['best', 'latest']).default('best'))
    .addOption(quantizeOption())
    .action(async (opts: Record<string, unknown>) => runChat(opts));
}

export function registerRlCommand(program: Command): void {
  const r = DEFAULT_RL_CONFIG;
  const command = program
    .command('rl')
    .description('reinforcement learning with GRPO on built-in verifiable tasks: groups of sampled replies, exact-match rewards, clipped policy ratio, KL to the starting model');
  addStageOptions(command, r, {
    base: 'run to start from (normally a tensorlm sft run)',
    batch: 'problems per step (each sampled --group-size times)',
    seed: 'random seed (problems, samples)',
    evalIters: 'unused by rl (its evaluation is exact match on every held-out problem)',
  })
    .addOption(new Option('--group-size <n>', 'replies sampled per problem (GRPO group)').default(r.groupSize).argParser(positiveInt('--group-size')))
    .addOption(new Option('--max-new-tokens <n>', 'most tokens of a reply').default(r.maxNewTokens).argParser(positiveInt('--max-new-tokens')))
    .addOption(new Option('--temperature <t>', 'sampling temperature of the rollouts').default(r.temperature).argParser(positiveNumber('--temperature')))
    .option('--dynamic-sampling', `draw past groups whose replies all get the same reward (they teach nothing), up to ${DYNAMIC_SAMPLING_DRAWS}× --batch-size problems a step (DAPO)`)
    .addOption(new Option('--clip-eps <x>', 'GRPO clipping ε of the policy ratio').default(r.clipEps).argParser(positiveNumber('--clip-eps')))
    .addOption(new Option('--kl-beta <x>', 'β of the KL penalty to the starting model (0 = none)').default(r.klBeta).argParser(nonNegativeNumber('--kl-beta')))
    .action(async (_opts: unknown, cmd: Command) => {
      const o = cmd.opts();
      const input: Partial<RlConfig> = { ...stageInput(o), groupSize: o.groupSize as number, maxNewTokens: o.maxNewTokens as number, temperature: o.temperature as number, clipEps: o.clipEps as number, klBeta: o.klBeta as number, dynamicSampling: o.dynamicSampling === true };
      await runStage<RlConfig, RlResult>(input, o.resume === true, rl, {
        stage: 'rl',
        verb: 'reinforcing',
        method: (c) => ` with GRPO (${c.batchSize} problems × ${c.groupSize} samples a step${c.dynamicSampling ? ', dynamic sampling' : ''}, ε ${c.clipEps}, KL β ${c.klBeta})`,
        evalFigures: (m) => `mean reward ${percent(m['reward/mean'] ?? 0)}`,
      });
    });
}

export function registerMergeCommand(program: Command): void {
  program
    .command('merge')
    .description("fold a LoRA run's adapters into its weights (W + α/r·B·A): a new run that loads as a plain model")
    .requiredOption('--run <dir>', 'a run fine-tuned with LoRA (tensorlm sft --lora-rank …)')
    .option('--name <name>', 'name of the merged run (default: <run name>-merged)')
    .option('--out-dir <dir>', 'directory of the merged run (default: the run’s own parent directory)')
    .action((opts: Record<string, unknown>) => {
      const runDir = opts.run as string;
      const name = (opts.name as string | undefined) ?? `${basename(runDir)}-merged`;
      const { files, merged } = mergeRun(runDir, (opts.outDir as string | undefined) ?? dirname(runDir), name);
      console.log(`merged ${merged.length} LoRA layers (${merged.join(', ')}) into ${files.dir}`);
      console.log(`chat with it: tensorlm chat --run ${files.dir}`);
    });
}
