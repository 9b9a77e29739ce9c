/** `tensorlm train`, `sample`, `eval` and `plot`: thin wrappers over src/train. */
import { readFileSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { positiveInt, nonNegativeInt, positiveNumber, nonNegativeNumber, fraction } from '../args.js';
import { TextDataset } from '../../data/dataset.js';
import { loadText } from '../../data/resolve.js';
import { generateText, streamTexts } from '../../models/generate.js';
import { isRecurrentConfig } from '../../models/config.js';
import { presetNames } from '../../models/presets.js';
import { DEFAULT_TRAIN_CONFIG, parseDuration, readTrainConfigFile, type TrainConfig } from '../../train/config.js';
import { evaluateStream, lossByPosition, uniformBaseline, unigramBaseline } from '../../train/evaluate.js';
import { readJsonFile, writeFileAtomic } from '../../data/files.js';
import { readMetrics } from '../../train/metrics.js';
import { lossCurveSpec, positionCurveSpec, writeLossCurve } from '../../train/plot.js';
import { loadRun, openRunData, SAMPLE_TEMPERATURE, train, VALIDATION_MAX_TOKENS, type RunConfig, type TrainResult } from '../../train/trainer.js';
import { formatSeconds, runProgress } from '../progress.js';
import { dataDirEnv } from '../../env.js';
import { parseJsonText } from '../../io/json.js';
import { predictedBytes } from '../../evals/bits-per-byte.js';
import { runEvalTasks } from './eval-tasks.js';
import { applyQuantize, quantizeOption } from '../quantize.js';
import { describeQuantization } from '../../models/quantize.js';
import type { QuantFormat } from '../../nn/quantized.js';

const d = DEFAULT_TRAIN_CONFIG;

function lrSchedule(value: string): string {
  if (value !== 'cosine' && value !== 'constant') throw new InvalidArgumentError(`--lr-schedule must be 'cosine' or 'constant', got '${value}'`);
  return value;
}
/** Seconds, or 'none' (commander turns a parser's null into '', so 'none' stays a string here). */
function duration(value: string): number | 'none' {
  try {
    return parseDuration(value) ?? 'none';
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** One data-parallel replica per core (what `--replicas auto` means), at most the batch's rows and 8. */
export function autoReplicas(batchSize: number): number {
  return Math.max(1, Math.min(availableParallelism(), batchSize, 8));
}

function replicasArg(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  return positiveInt('--replicas')(value) as number;
}

/** Flags and the config key each sets; defaults come from DEFAULT_TRAIN_CONFIG so --help shows them. */
const TRAIN_FLAGS: [flags: string, key: keyof TrainConfig, help: string, parse?: (v: string) => unknown][] = [
  ['--name <name>', 'name', 'run name: the run lives in <out-dir>/<name>/'],
  ['--out-dir <dir>', 'outDir', 'directory of runs'],
  ['--data <name|path>', 'data', "dataset name ('tinyshakespeare') or a text file / directory of text files"],
  ['--data-shards <dir>', 'dataShards', "train on a token shard directory from 'tensorlm data shard' instead of --data (read window by window; its tokenizer is used)"],
  ['--tokenizer <char|path>', 'tokenizer', "'char', or a BPE tokenizer JSON from 'tensorlm tokenizer train'"],
  ['--preset <name>', 'preset', `model preset (${presetNames.join(', ')})`],
  ['--batch-size <n>', 'batchSize', 'sequences per step', positiveInt('--batch-size')],
  ['--grad-accum-steps <n>', 'gradAccumSteps', 'micro-batches of --batch-size per optimizer step (gradient accumulation)', positiveInt('--grad-accum-steps')],
  ['--block-size <n>', 'blockSize', "context length of training windows (at most the model's maxSeqLen)", positiveInt('--block-size')],
  ['--max-steps <n>', 'maxSteps', 'optimizer steps (the upper bound when --max-time is given)', positiveInt('--max-steps')],
  ['--lr <x>', 'lr', 'peak learning rate (AdamW)', positiveNumber('--lr')],
  ['--min-lr <x>', 'minLr', 'learning rate at the end of the cosine decay', nonNegativeNumber('--min-lr')],
  ['--warmup-steps <n>', 'warmupSteps', 'linear warmup steps', nonNegativeInt('--warmup-steps')],
  ['--weight-decay <x>', 'weightDecay', 'decoupled weight decay of the weight matrices', nonNegativeNumber('--weight-decay')],
  ['--beta1 <x>', 'beta1', 'AdamW beta1', fraction('--beta1')],
  ['--beta2 <x>', 'beta2', 'AdamW beta2', fraction('--beta2')],
  ['--grad-clip <x>', 'gradClip', 'max global gradient norm (0 = off)', nonNegativeNumber('--grad-clip')],
  ['--eval-interval <n>', 'evalInterval', 'steps between evaluations (and checkpoints)', positiveInt('--eval-interval')],
  ['--eval-iters <n>', 'evalIters', 'batches per split per evaluation', positiveInt('--eval-iters')],
  ['--log-interval <n>', 'logInterval', 'steps between metric records', positiveInt('--log-interval')],
  ['--sample-tokens <n>', 'sampleTokens', 'tokens of sample text at the end', nonNegativeInt('--sample-tokens')],
  ['--seed <n>', 'seed', 'random seed (init, data order, dropout)', nonNegativeInt('--seed')],
  ['--replicas <n|auto>', 'replicas', "data-parallel replicas per step (worker threads + the main thread); 'auto' (the default of a new run) is one per core, up to the batch size and 8", replicasArg],
  ['--lr-schedule <kind>', 'lrSchedule', "'cosine' (warmup, then cosine decay to --min-lr) or 'constant' (warmup, then --lr)", lrSchedule],
];

function configFromFlags(command: Command, opts: Record<string, unknown>): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(opts)) {
    // Only flags typed on the command line override the config file (defaults do not).
    if (command.getOptionValueSource(key) !== 'cli') continue;
    if (key === 'config' || key === 'resume' || key === 'dataDir' || key === 'maxTime' || key === 'dropout' || MODEL_FLAG_KEYS.has(key)) continue;
    out[key] = value;
  }
  if (command.getOptionValueSource('maxTime') === 'cli') out.maxTime = opts.maxTime === 'none' ? null : opts.maxTime;
  if (command.getOptionValueSource('dropout') === 'cli') out.dropout = opts.dropout;
  const dataDir = (opts.dataDir as string | undefined) ?? dataDirEnv();
  if (dataDir) out.dataDir = dataDir;
  return out as Partial<TrainConfig>;
}

/** Model-size and μP flags (nanoGPT's n_embd / n_layer / n_head), merged into the config's `model`. */
const MODEL_FLAGS: [flags: string, key: string, help: string][] = [
  ['--d-model <n>', 'dModel', "model width (default: the preset's; dFF keeps the preset's ratio)"],
  ['--n-layers <n>', 'nLayers', "transformer blocks, or recurrent layers (default: the preset's)"],
  ['--hidden-size <n>', 'hiddenSize', "hidden state width of a recurrent preset (char-lstm, char-gru, char-rnn; default: the preset's)"],
  ['--n-heads <n>', 'nHeads', "attention heads (default: the preset's)"],
  ['--mup-base-width <n>', 'mupBaseWidth', 'train in μP relative to this base width (docs/mup.md); tune the LR at the base width, reuse it here'],
];
const MODEL_FLAG_KEYS = new Set(MODEL_FLAGS.map(([, key]) => key));

/** The model overrides typed on the command line, over the config file's `model`. */
function modelFromFlags(command: Command, opts: Record<string, unknown>, fileModel: TrainConfig['model'] | undefined): TrainConfig['model'] | undefined {
  const model: Record<string, unknown> = { ...(fileModel ?? {}) };
  let any = false;
  for (const [, key] of MODEL_FLAGS) {
    if (command.getOptionValueSource(key) !== 'cli') continue;
    any = true;
    if (key === 'mupBaseWidth') model.mup = { ...(((fileModel as { mup?: object | null } | undefined)?.mup) ?? {}), baseWidth: opts[key] };
    else model[key] = opts[key];
  }
  return any ? (model as TrainConfig['model']) : fileModel;
}

async function runTrain(command: Command): Promise<void> {
  const opts = command.opts();
  const fileConfig = opts.config ? readTrainConfigFile(opts.config as string) : {};
  const input: Partial<TrainConfig> = { ...fileConfig, ...configFromFlags(command, opts) };
  const modelOverrides = modelFromFlags(command, opts, fileConfig.model);
  if (modelOverrides !== undefined) input.model = modelOverrides;
  // A new run uses every core unless told otherwise; a resumed run keeps the count it recorded
  // (the count decides the order of float sums, so an exact resume needs the same one).
  const resuming = opts.resume === true;
  if (input.replicas === ('auto' as unknown) || (input.replicas === undefined && !resuming)) {
    input.replicas = autoReplicas(input.batchSize ?? DEFAULT_TRAIN_CONFIG.batchSize);
  }
  const progress = runProgress<RunConfig>(({ config, dir, parameters, resumed, trainTokens, valTokens }) => {
    const m = config.model;
    // Names and paths from where the run is (a copied run directory's config names the original).
    return [
      `${resumed ? 'resuming' : 'training'} ${basename(dir)}: preset ${config.train.preset} (${parameters.toLocaleString('en-US')} parameters, ` +
        `${isRecurrentConfig(m) ? `${m.nLayers} ${m.arch.toUpperCase()} layers, hidden ${m.hiddenSize}` : `${m.nLayers} layers, dModel ${m.dModel}, ${m.nHeads} heads`}, vocab ${m.vocabSize}) on ${config.train.dataShards ?? config.train.data} ` +
        `(${trainTokens.toLocaleString('en-US')} train / ${valTokens.toLocaleString('en-US')} val tokens)`,
      `batch ${config.train.batchSize} × block ${config.train.blockSize}${config.train.replicas > 1 ? ` over ${config.train.replicas} data-parallel replicas` : ''}, AdamW lr ${config.train.lr} → ${config.train.minLr}, ` + `${config.train.maxTime ? `time budget ${formatSeconds(config.train.maxTime)}, ` : ''}run directory ${dir}`,
    ];
  });
  const started = performance.now();
  let result: TrainResult;
  try {
    result = await train(input, { resume: opts.resume === true, shouldStop: progress.interrupted, hooks: progress.hooks });
  } finally {
    progress.stop();
  }
  const { model, tokenizer, dataset, config } = result;
  const runDir = result.files.dir;
  if (result.stoppedEarly === 'interrupted') {
    console.log(`stopped at step ${result.step}; checkpoint saved to ${result.files.latest}. Continue with: tensorlm train --name ${basename(runDir)} --out-dir ${dirname(runDir)} --resume`);
    return;
  }
  if (result.alreadyFinished === true) {
    const losses = result.finalValLoss === null ? '' : `; its final val loss is ${result.finalValLoss.toFixed(4)}`;
    const why = result.step >= result.plannedSteps ? `step ${result.step} of ${result.plannedSteps}` : `its time budget of ${formatSeconds(config.train.maxTime ?? 0)} is used up at step ${result.step}`;
    console.log(`${runDir} has already finished (${why}); nothing to train${losses}. To train longer, start a new run with --name.`);
    return;
  }
  const unit = tokenizer.vocabSize <= 256 && config.train.tokenizer === 'char' ? 'char' : 'token';
  console.log(`\nfinished ${result.step} steps in ${formatSeconds((performance.now() - started) / 1000)} (${Math.round(result.tokensPerSecond).toLocaleString('en-US')} tokens/s)`);
  // A shard set's splits can be far larger than memory: its final figures use their first tokens.
  const val = dataset.readSplit('val', VALIDATION_MAX_TOKENS);
  const full = evaluateStream(model, val, config.train.blockSize, config.train.batchSize);
  const uniform = uniformBaseline(tokenizer.vocabSize);
  const unigram = unigramBaseline(dataset.readSplit('train', VALIDATION_MAX_TOKENS), val, tokenizer.vocabSize);
  const span = val.length < dataset.valTokens ? `first ${full.tokens.toLocaleString('en-US')} ${unit}s of the val split` : `whole val split, ${full.tokens.toLocaleString('en-US')} ${unit}s`;
  console.log(`validation loss ${full.loss.toFixed(4)} nats/${unit} (${span}), perplexity ${full.perplexity.toFixed(2)}, ${full.bitsPerToken.toFixed(3)} bits/${unit}`);
  console.log(`  baselines: uniform ln ${tokenizer.vocabSize} = ${uniform.toFixed(4)}, unigram ${unigram.toFixed(4)} nats/${unit}`);
  if (config.train.sampleTokens > 0) {
    const sample = generateText(model, tokenizer, '', { maxNewTokens: config.train.sampleTokens, temperature: SAMPLE_TEMPERATURE, seed: config.train.seed });
    console.log(`\nsample:\n${sample.text}`);
  }
}

/** The line between the samples of `tensorlm sample --num-samples`. */
export const SAMPLE_SEPARATOR = '---------------';

async function runSample(opts: Record<string, unknown>): Promise<void> {
  // Quantized while it loads: the float32 model is never whole in memory.
  const { model, tokenizer, config, quantization } = loadRun(opts.run as string, opts.checkpoint as 'best' | 'latest', { quantize: opts.quantize as QuantFormat | undefined });
  // stderr: stdout carries only the text.
  if (quantization) process.stderr.write(`${describeQuantization(quantization)}\n`);
  const prompt = (opts.prompt as string) || '\n';
  const context = tokenizer.encode(prompt);
  if (context.length === 0) throw new Error('--prompt encodes to no tokens');
  // A transformer's context is bounded; a recurrent model carries its state over any length.
  if (!isRecurrentConfig(config.model) && context.length >= config.model.maxSeqLen) throw new Error(`--prompt is ${context.length} tokens; the model's context is ${config.model.maxSeqLen}`);
  const shown = opts.prompt ? prompt : '';
  process.stdout.write(shown);
  const stop = opts.stop as string[] | undefined;
  const samples = opts.numSamples as number;
  const stream = streamTexts(model, tokenizer, context, {
    maxNewTokens: opts.maxNewTokens as number,
    temperature: opts.temperature as number,
    topK: opts.topK as number | undefined,
    topP: opts.topP as number | undefined,
    seed: opts.seed as number,
    stop: stop && stop.length > 0 ? stop : undefined,
    numSamples: samples,
  });
  // The samples are rows of one batched run: the first streams as it is produced, the others are
  // printed after it, each after a separator line (nanoGPT's sample.py prints the same one).
  const rest = Array.from({ length: samples }, () => '');
  for (const chunk of stream) {
    if (chunk.row === 0) process.stdout.write(chunk.text);
    else rest[chunk.row] += chunk.text;
  }
  process.stdout.write('\n');
  for (let r = 1; r < samples; r++) process.stdout.write(`${SAMPLE_SEPARATOR}\n${shown}${rest[r]}\n`);
}

async function runEval(opts: Record<string, unknown>): Promise<void> {
  const { model, tokenizer, config, checkpoint } = loadRun(opts.run as string, opts.checkpoint as 'best' | 'latest');
  let stream;
  let what: string;
  if (opts.data) {
    const text = await loadText(opts.data as string, { dataDir: (opts.dataDir as string | undefined) ?? dataDirEnv() });
    stream = Int32Array.from(tokenizer.encode(text));
    what = opts.data as string;
  } else {
    // The run's own validation split: the tail of its text, or its shard set's val files.
    const data = await openRunData(config.train, tokenizer, { dataDir: (opts.dataDir as string | undefined) ?? config.train.dataDir ?? dataDirEnv() });
    stream = data.readSplit('val', VALIDATION_MAX_TOKENS);
    const part = stream.length < data.valTokens ? `, first ${stream.length.toLocaleString('en-US')} tokens` : '';
    what = config.train.dataShards ? `shards ${config.train.dataShards} (validation split${part})` : `${config.train.data} (validation split)`;
  }
  if (stream.length < 2) throw new Error(`${what} has fewer than 2 tokens`);
  const blockSize = (opts.blockSize as number | undefined) ?? config.train.blockSize;
  if (!isRecurrentConfig(config.model) && blockSize > config.model.maxSeqLen) throw new Error(`--block-size ${blockSize} is longer than the model's context (maxSeqLen ${config.model.maxSeqLen})`);
  const unit = config.train.tokenizer === 'char' ? 'char' : 'token';
  // With --quantize, the float32 figure first (the same windows), then the quantized model's below it.
  let float32: ReturnType<typeof evaluateStream> | null = null;
  if (opts.quantize !== undefined) {
    float32 = evaluateStream(model, stream, blockSize, config.train.batchSize);
    applyQuantize(model, opts.quantize, (line) => console.log(line));
  }
  const f = evaluateStream(model, stream, blockSize, config.train.batchSize);
  console.log(`${checkpoint}${float32 ? ` quantized to ${opts.quantize as string}` : ''} on ${what}: ${f.tokens.toLocaleString('en-US')} ${unit}s in windows of ${blockSize}`);
  // Bits per byte: tokenizer-independent (src/evals/bits-per-byte.ts: the UTF-8 bytes of the predicted tokens stream[1..]).
  const bpb = (f.loss * f.tokens) / (Math.LN2 * predictedBytes(tokenizer, stream));
  console.log(`loss ${f.loss.toFixed(4)} nats/${unit}, perplexity ${f.perplexity.toFixed(2)}, ${f.bitsPerToken.toFixed(3)} bits/${unit}, ${bpb.toFixed(3)} bits/byte (uniform baseline ${uniformBaseline(tokenizer.vocabSize).toFixed(4)})`);
  if (float32) {
    const cost = (f.perplexity / float32.perplexity - 1) * 100;
    console.log(`float32: loss ${float32.loss.toFixed(4)} nats/${unit}, perplexity ${float32.perplexity.toFixed(2)} — ${opts.quantize as string} costs ${(f.loss - float32.loss).toFixed(5)} nats/${unit}, perplexity ${cost >= 0 ? '+' : ''}${cost.toFixed(3)}% against float32`);
  }
  if (opts.byPosition) {
    const windows = Math.floor((stream.length - 1) / blockSize);
    if (windows < 1) throw new Error(`${what} is shorter than one window of ${blockSize} + 1 tokens`);
    const losses = lossByPosition(model, stream, blockSize, { batchSize: config.train.batchSize });
    const shown = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048].filter((p) => p < blockSize).concat(blockSize);
    console.log(`loss by position (${windows.toLocaleString('en-US')} windows; position p predicts its token from the p − 1 before it):`);
    console.log(shown.map((p) => `${p}: ${losses[p - 1].toFixed(3)}`).join(', '));
    const path = join(opts.run as string, `loss-by-position-${blockSize}.json`);
    writeFileAtomic(path, JSON.stringify({ checkpoint, data: what, blockSize, windows, losses: Array.from(losses, (v) => Math.round(v * 1e6) / 1e6) }) + '\n');
    console.log(`wrote ${path}`);
  }
}

/** A run's loss-by-position curve written by `tensorlm eval --by-position`. */
function readPositionCurve(dir: string, blockSize: number): number[] {
  const path = join(dir, `loss-by-position-${blockSize}.json`);
  if (!existsSync(path)) throw new Error(`${path} does not exist: run tensorlm eval --run ${dir} --by-position --block-size ${blockSize} first`);
  const json = readJsonFile(path, 'loss-by-position file') as { losses?: unknown };
  if (!Array.isArray(json.losses) || json.losses.length !== blockSize || !json.losses.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new Error(`${path} must hold 'losses', ${blockSize} finite numbers`);
  }
  return json.losses as number[];
}

const DEFAULT_PLOT_TITLE = 'TensorLM loss curves';

async function runPlot(opts: Record<string, unknown>): Promise<void> {
  if (opts.byPosition !== undefined) {
    const blockSize = opts.byPosition as number;
    const curves = (opts.run as string[]).map((dir) => ({ name: dir.split('/').filter(Boolean).pop() ?? dir, losses: readPositionCurve(dir, blockSize) }));
    const out = (opts.out as string | undefined) ?? join((opts.run as string[])[0], `loss-by-position-${blockSize}`);
    const title = opts.title === DEFAULT_PLOT_TITLE ? `loss by position in windows of ${blockSize}` : (opts.title as string);
    console.log(`wrote ${(await writeLossCurve(out, positionCurveSpec(curves, title))).join(', ')}`);
    return;
  }
  const runs = (opts.run as string[]).map((dir) => {
    const records = readMetrics(join(dir, 'metrics.jsonl'));
    if (records.length === 0) throw new Error(`${dir} has no metrics (metrics.jsonl is missing or empty)`);
    return { name: dir.split('/').filter(Boolean).pop() ?? dir, records };
  });
  const first = opts.run as string[];
  const out = (opts.out as string | undefined) ?? join(first[0], 'loss');
  let baseline: number | undefined;
  try {
    const path = join(first[0], 'config.json');
    const cfg = parseJsonText(readFileSync(path, 'utf8'), `run config ${path}`) as { model: { vocabSize: number } };
    baseline = Math.log(cfg.model.vocabSize);
  } catch {
    baseline = undefined;
  }
  const written = await writeLossCurve(out, lossCurveSpec(runs, opts.title as string, baseline));
  console.log(`wrote ${written.join(', ')}`);
}

export function registerTrainCommands(program: Command): void {
  const trainCommand = program.command('train').description('train a language model (default: the tiny char-level GPT on tiny-shakespeare, about 10 minutes on 2 CPU cores)');
  trainCommand.option('--config <file>', 'JSON file of train settings (camelCase keys); flags override it');
  for (const [flags, key, help, parse] of TRAIN_FLAGS) {
    const option = new Option(flags, help).default(key === 'replicas' ? 'auto' : d[key]);
    if (parse) option.argParser(parse);
    trainCommand.addOption(option);
  }
  trainCommand
    .addOption(new Option('--max-time <duration>', "training time budget, e.g. 10m or 90s, planning the step count from the measured speed; 'none' trains exactly --max-steps").default(d.maxTime === null ? 'none' : `${d.maxTime}s`).argParser(duration))
    .addOption(new Option('--dropout <p>', "dropout (default: the preset's)").argParser(fraction('--dropout')))
    .addOption(new Option('--data-dir <dir>', 'cache directory for named datasets (default: $TENSORLM_DATA_DIR or ~/.cache/tensorlm)'));
  for (const [flags, , help] of MODEL_FLAGS) trainCommand.addOption(new Option(flags, help).argParser(positiveInt(flags.split(' ')[0])));
  trainCommand
    .option('--resume', 'continue the run <out-dir>/<name> from its latest checkpoint', false)
    .action(async (_opts, command: Command) => runTrain(command));

  const checkpointOption = () => new Option('--checkpoint <which>', 'which checkpoint').choices(['best', 'latest']).default('best');
  program
    .command('sample')
    .description("generate text from a trained run's checkpoint, streamed as it is produced (KV cache)")
    .requiredOption('--run <dir>', 'run directory, e.g. runs/shakespeare-char')
    .option('--prompt <text>', 'text to continue', '')
    .addOption(new Option('--max-new-tokens <n>', 'tokens to generate').default(500).argParser(positiveInt('--max-new-tokens')))
    .addOption(new Option('--temperature <t>', 'sampling temperature; 0 = greedy').default(0.8).argParser(nonNegativeNumber('--temperature')))
    .addOption(new Option('--top-k <k>', 'sample among the k most likely tokens').argParser(positiveInt('--top-k')))
    .addOption(new Option('--top-p <p>', 'nucleus sampling: the smallest set with probability ≥ p').argParser(positiveNumber('--top-p')))
    .addOption(new Option('--seed <n>', 'sampling seed').default(1).argParser(nonNegativeInt('--seed')))
    .addOption(new Option('--num-samples <n>', `continuations to draw in one batched run, printed one after another with a '${SAMPLE_SEPARATOR}' line between them`).default(1).argParser(positiveInt('--num-samples')))
    .option('--stop <text>', 'stop when the text contains this (not printed; \\n is a newline); repeatable', (value: string, previous: string[]) => [...previous, value.replace(/\\n/g, '\n')], [] as string[])
    .addOption(checkpointOption())
    .addOption(quantizeOption())
    .action(async (opts: Record<string, unknown>) => runSample(opts));

  program
    .command('eval')
    .description("loss, perplexity and bits per char/token of a run's checkpoint on its validation split or a given text")
    .requiredOption('--run <dir>', 'run directory')
    .option('--data <name|path>', 'evaluate on this text instead of the validation split')
    .option('--data-dir <dir>', 'cache directory for named datasets')
    .addOption(new Option('--block-size <n>', "window length (default: the run's training block size; a transformer's at most its maxSeqLen)").argParser(positiveInt('--block-size')))
    .option('--by-position', 'also the mean loss at each position of the windows (how much the model gains from context), written to <run>/loss-by-position-<block-size>.json')
    .option('--tasks <list>', 'score tasks instead (docs/evaluation.md): shakespeare-speaker, shakespeare-continuation, addition, reverse, sort, count (SFT runs), path/to/task.jsonl; comma-separated; writes <run>/eval-tasks.json')
    .addOption(new Option('--limit <n>', 'most examples per task (default: 500 per built-in task, all of a file)').argParser(positiveInt('--limit')))
    .addOption(new Option('--seed <n>', "seed of the built-in tasks' examples").default(1337).argParser(nonNegativeInt('--seed')))
    .addOption(checkpointOption())
    .addOption(quantizeOption())
    .action(async (opts: Record<string, unknown>) => {
      if (opts.tasks === undefined) return runEval(opts);
      if (opts.quantize !== undefined) throw new Error('--quantize cannot be combined with --tasks (it measures the loss and perplexity of the validation split or --data)');
      if (opts.data !== undefined || opts.byPosition) throw new Error('--tasks cannot be combined with --data or --by-position');
      await runEvalTasks({ run: opts.run as string, tasks: opts.tasks as string, checkpoint: opts.checkpoint as 'best' | 'latest', limit: opts.limit as number | undefined, seed: opts.seed as number, dataDir: opts.dataDir as string | undefined, blockSize: opts.blockSize as number | undefined });
    });

  program
    .command('plot')
    .description('loss curves (train and val, against steps and tokens) as SVG and PNG')
    .requiredOption('--run <dirs...>', 'run directories (several overlay their curves)')
    .option('--out <base>', 'output path without extension (default: <run>/loss)')
    .option('--title <text>', 'chart title', DEFAULT_PLOT_TITLE)
    .addOption(new Option('--by-position <block-size>', 'plot the runs\' loss by position (from tensorlm eval --by-position) instead of their training curves').argParser(positiveInt('--by-position')))
    .action(async (opts: Record<string, unknown>) => runPlot(opts));
}
