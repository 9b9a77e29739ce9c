/** `tensorlm sft` and `tensorlm chat`: fine-tuning stages over src/posttrain (thin: flags in, library call, lines out). */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { parseDuration } from '../../train/config.js';
import { DEFAULT_SFT_CONFIG, sft, type SftConfig } from '../../posttrain/sft.js';
import { DEFAULT_RL_CONFIG, rl, type RlConfig } from '../../posttrain/rl.js';
import { createInterface } from 'node:readline';
import { ChatSession, type ChatReplyOptions } from '../../models/chat.js';
import { loadRun, type RunConfig } from '../../train/trainer.js';
import { fraction, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber } from '../args.js';
import { formatSeconds, runProgress } from '../progress.js';

const d = DEFAULT_SFT_CONFIG;

function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

async function runSft(command: Command): Promise<void> {
  const o = command.opts();
  const input: Partial<SftConfig> = {
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
  const progress = runProgress<RunConfig>(
    ({ config, parameters, resumed, trainTokens, valTokens }) => {
      const c = (config as RunConfig & { sft: SftConfig }).sft;
      const trainable = parameters;
      return [
        `${resumed ? 'resuming' : 'fine-tuning'} ${c.name} from ${c.base} (${c.lora ? `LoRA r=${c.lora.rank} α=${c.lora.alpha} on ${Array.isArray(c.lora.targetModules) ? c.lora.targetModules.join(',') : c.lora.targetModules}` : 'full'}, ${trainable.toLocaleString('en-US')} parameters) on ${[c.data, ...c.tasks].filter(Boolean).join(', ')}`,
        `${trainTokens.toLocaleString('en-US')} train / ${valTokens.toLocaleString('en-US')} held-out tokens; batch ${c.batchSize}, AdamW lr ${c.lr} → ${c.minLr}; run directory ${join(c.outDir, c.name)}`,
      ];
    },
    (r) => {
      const tasks = Object.keys(r.metrics ?? {})
        .filter((k) => k.endsWith('/accuracy'))
        .map((k) => `${k.slice(0, -'/accuracy'.length)} ${percent((r.metrics as Record<string, number>)[k])}`);
      return `step ${r.step}: train loss ${r.trainLoss.toFixed(4)}, val loss ${r.valLoss.toFixed(4)}${tasks.length ? `; held-out exact match: ${tasks.join(', ')}` : ''}`;
    },
  );
  const started = performance.now();
  let result;
  try {
    result = await sft(input, { resume: o.resume === true, shouldStop: progress.interrupted, hooks: progress.hooks });
  } finally {
    progress.stop();
  }
  const c = result.config.sft;
  if (result.stoppedEarly === 'interrupted') {
    console.log(`stopped at step ${result.step}; checkpoint saved to ${result.files.latest}. Continue with: tensorlm sft --name ${c.name} --out-dir ${c.outDir} --base ${c.base} --resume`);
    return;
  }
  console.log(`\nfinished ${result.step} steps in ${formatSeconds((performance.now() - started) / 1000)}; best val loss ${result.bestValLoss?.toFixed(4) ?? '–'}`);
  for (const [task, s] of Object.entries(result.taskScores)) console.log(`  ${task}: exact match ${s.correct}/${s.total} = ${percent(s.accuracy)} (95% CI ${percent(s.low)}–${percent(s.high)})`);
  console.log(`chat with it: tensorlm chat --run ${join(c.outDir, c.name)}`);
}

export function registerPosttrainCommands(program: Command): void {
  program
    .command('sft')
    .description("supervised fine-tuning of a run's model on conversations (JSONL) and/or built-in tasks, in the chat format; loss on the assistant's tokens only")
    .requiredOption('--base <dir>', 'run directory of the pretrained model (e.g. runs/shakespeare-char)')
    .addOption(new Option('--base-checkpoint <which>', 'checkpoint of the base run').choices(['best', 'latest']).default(d.baseCheckpoint))
    .option('--data <file>', 'conversations JSONL: {"messages": [{"role": "user"|"assistant"|"system", "content": "…"}, …]} per line')
    .option('--task <list>', 'built-in verifiable tasks, comma-separated: addition, reverse, sort, count')
    .option('--name <name>', 'run name: the run lives in <out-dir>/<name>/', d.name)
    .option('--out-dir <dir>', 'directory of runs', d.outDir)
    .addOption(new Option('--task-examples <n>', 'training problems per task').default(d.taskExamples).argParser(positiveInt('--task-examples')))
    .addOption(new Option('--eval-examples <n>', 'held-out problems per task (exact match, validation loss)').default(d.evalExamples).argParser(positiveInt('--eval-examples')))
    .addOption(new Option('--batch-size <n>', 'conversations per step (padded)').default(d.batchSize).argParser(positiveInt('--batch-size')))
    .addOption(new Option('--max-steps <n>', 'optimizer steps').default(d.maxSteps).argParser(positiveInt('--max-steps')))
    .option('--max-time <duration>', 'time budget (e.g. 5m): the step count is planned from the measured speed')
    .addOption(new Option('--lr <x>', 'peak learning rate (AdamW)').default(d.lr).argParser(positiveNumber('--lr')))
    .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine decay').default(d.minLr).argParser(nonNegativeNumber('--min-lr')))
    .addOption(new Option('--warmup-steps <n>', 'linear warmup steps').default(d.warmupSteps).argParser(nonNegativeInt('--warmup-steps')))
    .addOption(new Option('--weight-decay <x>', 'decoupled weight decay of the weight matrices').default(d.weightDecay).argParser(nonNegativeNumber('--weight-decay')))
    .addOption(new Option('--grad-clip <x>', 'max global gradient norm (0 = off)').default(d.gradClip).argParser(nonNegativeNumber('--grad-clip')))
    .addOption(new Option('--eval-interval <n>', 'steps between evaluations (and checkpoints)').default(d.evalInterval).argParser(positiveInt('--eval-interval')))
    .addOption(new Option('--eval-iters <n>', 'batches per split for the loss at each evaluation').default(d.evalIters).argParser(positiveInt('--eval-iters')))
    .addOption(new Option('--seed <n>', 'random seed (task problems, batches, LoRA init)').default(d.seed).argParser(nonNegativeInt('--seed')))
    .addOption(new Option('--lora-rank <r>', 'train LoRA adapters of this rank instead of every weight').argParser(positiveInt('--lora-rank')))
    .addOption(new Option('--lora-alpha <a>', 'LoRA scaling α (the update is scaled by α/r; default 2r)').argParser(positiveNumber('--lora-alpha')))
    .addOption(new Option('--lora-dropout <p>', 'dropout on the LoRA branch').default(0).argParser(fraction('--lora-dropout')))
    .option('--lora-targets <list>', "modules to adapt: comma-separated names (wq,wk,wv,wo,w1,w2,w3) or 'all-linear'", 'all-linear')
    .option('--resume', 'continue the run in <out-dir>/<name>/ from its latest checkpoint')
    .action(async (_opts: unknown, command: Command) => runSft(command));
}

/** Reads all of standard input (a piped prompt). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const CHAT_HELP = 'commands: /reset (forget the conversation), /temp <t> (sampling temperature; 0 = greedy), /help, /quit (or Ctrl-D)';

async function runChat(opts: Record<string, unknown>): Promise<void> {
  const { model, tokenizer } = loadRun(opts.run as string, opts.checkpoint as 'best' | 'latest');
  const session = new ChatSession(model, tokenizer, { system: opts.system as string | undefined });
  const reply: ChatReplyOptions = { maxNewTokens: opts.maxNewTokens as number, temperature: opts.temperature as number, topK: opts.topK as number | undefined, topP: opts.topP as number | undefined, seed: opts.seed as number };
  const answer = (text: string) => {
    for (const chunk of session.send(text, reply)) process.stdout.write(chunk.text);
    process.stdout.write('\n');
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
    .addOption(new Option('--checkpoint <which>', 'which checkpoint of the run').choices(['best', 'latest']).default('best'))
    .action(async (opts: Record<string, unknown>) => runChat(opts));
}

async function runRl(command: Command): Promise<void> {
  const o = command.opts();
  const input: Partial<RlConfig> = {
    base: o.base as string,
    baseCheckpoint: o.baseCheckpoint as 'best' | 'latest',
    name: o.name as string,
    outDir: o.outDir as string,
    tasks: String(o.task ?? '').split(',').map((t) => t.trim()).filter(Boolean),
    evalExamples: o.evalExamples as number,
    promptsPerStep: o.promptsPerStep as number,
    groupSize: o.groupSize as number,
    maxNewTokens: o.maxNewTokens as number,
    temperature: o.temperature as number,
    maxSteps: o.maxSteps as number,
    maxTime: o.maxTime === undefined ? null : parseDuration(o.maxTime as string),
    lr: o.lr as number,
    minLr: o.minLr as number,
    clipEps: o.clipEps as number,
    klBeta: o.klBeta as number,
    evalInterval: o.evalInterval as number,
    seed: o.seed as number,
  };
  const progress = runProgress<RunConfig>(
    ({ config, resumed }) => {
      const c = (config as RunConfig & { rl: RlConfig }).rl;
      return [
        `${resumed ? 'resuming' : 'reinforcing'} ${c.name} from ${c.base} with GRPO on ${c.tasks.join(', ')}: ${c.promptsPerStep} problems × ${c.groupSize} samples a step, ε ${c.clipEps}, KL β ${c.klBeta}; run directory ${join(c.outDir, c.name)}`,
      ];
    },
    (r) => {
      const m = r.metrics ?? {};
      const tasks = Object.keys(m)
        .filter((k) => k.endsWith('/accuracy'))
        .map((k) => `${k.slice(0, -'/accuracy'.length)} ${percent(m[k])}`);
      return `step ${r.step}: mean reward ${percent(m['reward/mean'] ?? 0)}; held-out exact match: ${tasks.join(', ')}`;
    },
  );
  const started = performance.now();
  let result;
  try {
    result = await rl(input, { resume: o.resume === true, shouldStop: progress.interrupted, hooks: progress.hooks });
  } finally {
    progress.stop();
  }
  const c = result.config.rl;
  if (result.stoppedEarly === 'interrupted') {
    console.log(`stopped at step ${result.step}; checkpoint saved to ${result.files.latest}. Continue with: tensorlm rl --name ${c.name} --out-dir ${c.outDir} --base ${c.base} --task ${c.tasks.join(',')} --resume`);
    return;
  }
  console.log(`\nfinished ${result.step} steps in ${formatSeconds((performance.now() - started) / 1000)}`);
  for (const [task, s] of Object.entries(result.taskScores)) console.log(`  ${task}: exact match ${s.correct}/${s.total} = ${percent(s.accuracy)} (95% CI ${percent(s.low)}–${percent(s.high)})`);
}

export function registerRlCommand(program: Command): void {
  const r = DEFAULT_RL_CONFIG;
  program
    .command('rl')
    .description('reinforcement learning with GRPO on built-in verifiable tasks: groups of sampled replies, exact-match rewards, clipped policy ratio, KL to the starting model')
    .requiredOption('--base <dir>', 'run to start from (normally a tensorlm sft run)')
    .requiredOption('--task <list>', 'built-in verifiable tasks, comma-separated: addition, reverse, sort, count')
    .addOption(new Option('--base-checkpoint <which>', 'checkpoint of the base run').choices(['best', 'latest']).default(r.baseCheckpoint))
    .option('--name <name>', 'run name: the run lives in <out-dir>/<name>/', r.name)
    .option('--out-dir <dir>', 'directory of runs', r.outDir)
    .addOption(new Option('--prompts-per-step <n>', 'problems per step').default(r.promptsPerStep).argParser(positiveInt('--prompts-per-step')))
    .addOption(new Option('--group-size <n>', 'replies sampled per problem (GRPO group)').default(r.groupSize).argParser(positiveInt('--group-size')))
    .addOption(new Option('--max-new-tokens <n>', 'most tokens of a reply').default(r.maxNewTokens).argParser(positiveInt('--max-new-tokens')))
    .addOption(new Option('--temperature <t>', 'sampling temperature of the rollouts').default(r.temperature).argParser(positiveNumber('--temperature')))
    .addOption(new Option('--eval-examples <n>', 'held-out problems per task (exact match)').default(r.evalExamples).argParser(positiveInt('--eval-examples')))
    .addOption(new Option('--max-steps <n>', 'optimizer steps').default(r.maxSteps).argParser(positiveInt('--max-steps')))
    .option('--max-time <duration>', 'time budget (e.g. 5m)')
    .addOption(new Option('--lr <x>', 'peak learning rate (AdamW)').default(r.lr).argParser(positiveNumber('--lr')))
    .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine decay').default(r.minLr).argParser(nonNegativeNumber('--min-lr')))
    .addOption(new Option('--clip-eps <x>', 'GRPO clipping ε of the policy ratio').default(r.clipEps).argParser(positiveNumber('--clip-eps')))
    .addOption(new Option('--kl-beta <x>', 'β of the KL penalty to the starting model (0 = none)').default(r.klBeta).argParser(nonNegativeNumber('--kl-beta')))
    .addOption(new Option('--eval-interval <n>', 'steps between evaluations (and checkpoints)').default(r.evalInterval).argParser(positiveInt('--eval-interval')))
    .addOption(new Option('--seed <n>', 'random seed (problems, samples)').default(r.seed).argParser(nonNegativeInt('--seed')))
    .option('--resume', 'continue the run in <out-dir>/<name>/ from its latest checkpoint')
    .action(async (_opts: unknown, command: Command) => runRl(command));
}
