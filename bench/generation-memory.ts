/**
 * Peak memory of generation against the weights' bytes (issue 18: at most 1.2×). Writes a
 * TinyLlama-1.1B-shaped run directory with random weights (config.json, tokenizer.json,
 * latest.safetensors as training saves it), then runs `tensorlm sample` on it in a child process
 * — a 128-token prompt, 64 greedy tokens — and reports that child's peak RSS (getrusage's maxrss,
 * printed by the child at exit) over 4 × the parameter count.
 *
 *   node --import tsx bench/generation-memory.ts [--layers 22] [--dir /tmp/tensorlm-genmem] [--keep] [--quantize int8|q8_0]
 *
 * With --quantize the sample runs quantized and the ratio is against the quantized model's bytes
 * (codes, scales and the float32 rest, as the CLI's quantization line reports them).
 *
 * `--layers 2` is a smoke test (under a minute). At full size it needs ~4.5 GB of disk under --dir,
 * ~5 GB of memory while a first child writes the checkpoint, then the measured child's peak; the
 * directory is removed afterwards unless --keep. The checkpoint carries no optimizer buffers (an
 * AdamW that never stepped has none), so the file is the weights plus a small header.
 *
 * The child is `node --import tsx --import <this file> src/cli/main.ts sample …`: imported with
 * GENERATION_MEMORY_CHILD set, this module only registers the exit hook that prints the peak, so
 * the figure is the CLI's own process (no npx / tsx wrapper processes in between).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD_FLAG = 'GENERATION_MEMORY_CHILD';
const PEAK_LINE = 'generation-memory peak RSS bytes:';

if (process.env[CHILD_FLAG] === '1') {
  // maxRSS is in kilobytes (getrusage's ru_maxrss on Linux).
  process.on('exit', () => process.stderr.write(`${PEAK_LINE} ${process.resourceUsage().maxRSS * 1024}\n`));
}

const PROMPT_TOKENS = 128;
const NEW_TOKENS = 64;

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export interface GenerationMemoryFigures {
  parameters: number;
  weightBytes: number;
  peakRss: number;
  ratio: number;
  seconds: number;
}

async function writeRun(dir: string, layers: number, print: (line: string) => void): Promise<{ parameters: number; prompt: string }> {
  // Imported here so that the child's preload of this file loads none of the library.
  const { setBackendInstaller } = await import('../src/backends/registry.js');
  const { installNodeBackends } = await import('../src/backends/node.js');
  setBackendInstaller(installNodeBackends);
  const { presetConfig } = await import('../src/models/presets.js');
  const { countParameters } = await import('../src/models/params.js');
  const { TransformerLM } = await import('../src/models/transformer.js');
  const { Generator } = await import('../src/tensor/random.js');
  const { CharTokenizer } = await import('../src/tokenizers/char.js');
  const { AdamW } = await import('../src/optim/adam.js');
  const { resolveTrainConfig } = await import('../src/train/config.js');
  const { saveCheckpoint } = await import('../src/train/checkpoint.js');

  // A character tokenizer of exactly the model's 32,000 tokens (random weights emit any id): printable
  // ASCII, a newline, then code points from U+0100 up (all below the surrogates). The prompt is
  // 128 ASCII characters = 128 tokens.
  const config = presetConfig('tinyllama-1.1b', { nLayers: layers });
  const ascii = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');
  const rest = Array.from({ length: config.vocabSize - 96 }, (_, i) => String.fromCharCode(0x100 + i)).join('');
  const tokenizer = CharTokenizer.fromText(`${ascii}\n${rest}`);
  if (tokenizer.vocabSize !== config.vocabSize) throw new Error(`the bench tokenizer has ${tokenizer.vocabSize} tokens, expected ${config.vocabSize}`);
  const parameters = countParameters(config).total;
  print(`TinyLlama-1.1B shape, ${layers} layers: ${parameters.toLocaleString('en-US')} parameters, ${gib(4 * parameters)} of float32 weights`);
  let t = performance.now();
  const model = new TransformerLM(config, { generator: new Generator(1) });
  print(`random weights in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const train = resolveTrainConfig({ outDir: dir, name: '.', data: 'bench', model: {} });
  const runConfig = { train, model: config };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(runConfig, null, 2) + '\n');
  tokenizer.save(join(dir, 'tokenizer.json'));
  t = performance.now();
  const meta = { step: 0, tokensSeen: 0, elapsedSeconds: 0, bestValLoss: null, rng: { data: new Generator(2).getState(), dropout: new Generator(3).getState() }, config: runConfig, plannedSteps: 1 };
  saveCheckpoint(join(dir, 'latest.safetensors'), model, new AdamW(model.parameters()), meta, { tokenizer });
  print(`checkpoint written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const g = new Generator(4);
  const prompt = Array.from({ length: PROMPT_TOKENS }, () => ascii[g.randint(0, 95)]).join('');
  return { parameters, prompt };
}

/** Runs this file (or the CLI) as a child on Node with tsx; its stdout and stderr, or a one-line error. */
function runChild(args: string[], root: string, env: NodeJS.ProcessEnv, what: string): { stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: root, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.status !== 0) throw new Error(`${what} failed (exit ${child.status ?? child.signal}): ${(child.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  return { stdout: child.stdout, stderr: child.stderr };
}

export async function runGenerationMemoryBench(options: { layers?: number; dir?: string; keep?: boolean; quantize?: 'int8' | 'q8_0'; print?: (line: string) => void } = {}): Promise<GenerationMemoryFigures> {
  const layers = options.layers ?? 22;
  const dir = resolve(options.dir ?? '/tmp/tensorlm-genmem');
  const print = options.print ?? ((line: string) => console.log(line));
  const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
  const self = fileURLToPath(import.meta.url);
  try {
    // The run is written by a child of its own, so that its model (4.4 GB at full size) is gone
    // before the measured child starts: the machine holds one copy of the weights at a time.
    const written = runChild([self, '--write', '--layers', String(layers), '--dir', dir], root, process.env, 'writing the run');
    for (const line of written.stdout.trim().split('\n')) if (!line.startsWith('{')) print(line);
    const { parameters, prompt } = JSON.parse(written.stdout.trim().split('\n').at(-1) ?? '{}') as { parameters: number; prompt: string };
    const weightBytes = 4 * parameters;
    const t = performance.now();
    const sampled = runChild(['--import', self, join(root, 'src/cli/main.ts'), 'sample', '--run', dir, '--checkpoint', 'latest', '--prompt', prompt, '--max-new-tokens', String(NEW_TOKENS), '--temperature', '0', ...(options.quantize ? ['--quantize', options.quantize] : [])], root, { ...process.env, [CHILD_FLAG]: '1' }, 'tensorlm sample');
    const seconds = (performance.now() - t) / 1000;
    const line = sampled.stderr.split('\n').find((l) => l.startsWith(PEAK_LINE));
    if (line === undefined) throw new Error(`the child printed no '${PEAK_LINE}' line`);
    const peakRss = Number(line.slice(PEAK_LINE.length));
    let weights = weightBytes;
    if (options.quantize) {
      // The CLI's line: "quantized N layers to q8_0: weights A MB → B MB (…)".
      const m = /weights [0-9.]+ MB → ([0-9.]+) MB/.exec(sampled.stderr);
      if (m === null) throw new Error('the child printed no quantization line');
      weights = Number(m[1]) * 1e6;
    }
    const ratio = peakRss / weights;
    print(`tensorlm sample${options.quantize ? ` --quantize ${options.quantize}` : ''} (${PROMPT_TOKENS}-token prompt, ${NEW_TOKENS} greedy tokens) in ${seconds.toFixed(1)} s: peak RSS ${gib(peakRss)}, weights ${gib(weights)}, ratio ${ratio.toFixed(3)}× (target ≤ 1.2×)`);
    return { parameters, weightBytes: weights, peakRss, ratio, seconds };
  } finally {
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env[CHILD_FLAG] !== '1' && import.meta.url === `file://${process.argv[1]}`) {
  const { flag } = await import('./args.js');
  const layers = Number(flag('layers', '22'));
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers must be a positive integer, got ${flag('layers', '22')}`);
  const dir = flag('dir', '/tmp/tensorlm-genmem');
  if (process.argv.includes('--write')) {
    // The writer child: progress lines, then one JSON line for the parent.
    const run = await writeRun(resolve(dir), layers, (line) => console.log(line));
    console.log(JSON.stringify(run));
  } else {
    const quantize = flag('quantize', '');
    if (quantize !== '' && quantize !== 'int8' && quantize !== 'q8_0') throw new Error(`--quantize takes int8 or q8_0, got '${quantize}'`);
    await runGenerationMemoryBench({ layers, dir, keep: process.argv.includes('--keep'), quantize: quantize === '' ? undefined : quantize });
  }
}
