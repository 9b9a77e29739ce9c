/**
 * The playground page: controls, the live loss chart and the sample output. All TensorLM work
 * happens in the worker (trainer-worker.ts, built inline so the page also runs from file://);
 * this thread only sends settings and draws what comes back.
 */
import { Chart, Legend, LinearScale, LineController, LineElement, PointElement, Tooltip } from 'chart.js';
import type { FromWorker, ModelSummary, PresetInfo, ToWorker, TrainState } from './protocol.js';
import { SAMPLE_TEXT } from './sample-text.js';
import TrainerWorker from './trainer-worker.ts?worker&inline';

Chart.register(LineController, LineElement, PointElement, LinearScale, Legend, Tooltip);

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`playground: missing element #${id}`);
  return el as T;
}

const ui = {
  engine: $('engine-status'),
  text: $<HTMLTextAreaElement>('text'),
  textFile: $<HTMLInputElement>('text-file'),
  textInfo: $('text-info'),
  preset: $<HTMLSelectElement>('preset'),
  steps: $<HTMLInputElement>('steps'),
  lr: $<HTMLInputElement>('lr'),
  batch: $<HTMLInputElement>('batch'),
  block: $<HTMLInputElement>('block'),
  evalEvery: $<HTMLInputElement>('eval-every'),
  train: $<HTMLButtonElement>('train'),
  stop: $<HTMLButtonElement>('stop'),
  resume: $<HTMLButtonElement>('resume'),
  modelInfo: $('model-info'),
  step: $('step'),
  maxSteps: $('max-steps'),
  loss: $('loss'),
  valLoss: $('val-loss'),
  tps: $('tps'),
  lrNow: $('lr-now'),
  state: $('state'),
  chart: $<HTMLCanvasElement>('chart'),
  evalSample: $('eval-sample'),
  prompt: $<HTMLInputElement>('prompt'),
  temperature: $<HTMLInputElement>('temperature'),
  length: $<HTMLInputElement>('length'),
  sample: $<HTMLButtonElement>('sample'),
  sampleInfo: $('sample-info'),
  sampleOutput: $('sample-output'),
  modelFiles: $<HTMLInputElement>('model-files'),
  load: $<HTMLButtonElement>('load'),
  loadStatus: $('load-status'),
  error: $('error'),
};

// ---- chart -----------------------------------------------------------------------------------

type Point = { x: number; y: number };
const trainPoints: Point[] = [];
const valPoints: Point[] = [];
const chart = new Chart(ui.chart, {
  type: 'line',
  data: {
    datasets: [
      { label: 'train loss', data: trainPoints, borderColor: '#2f6fdb', backgroundColor: '#2f6fdb', borderWidth: 1.5, pointRadius: 0 },
      { label: 'val loss', data: valPoints, borderColor: '#d9822b', backgroundColor: '#d9822b', borderWidth: 2, pointRadius: 3 },
    ],
  },
  options: {
    animation: false,
    maintainAspectRatio: false,
    parsing: false,
    normalized: true,
    scales: {
      x: { type: 'linear', title: { display: true, text: 'step' }, min: 0 },
      y: { type: 'linear', title: { display: true, text: 'loss (nats/char)' } },
    },
    plugins: { legend: { position: 'top' }, tooltip: { intersect: false, mode: 'nearest' } },
  },
});

let chartQueued = false;
/** Redraws at most once per frame, however fast steps arrive. */
function redrawChart(): void {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => {
    chartQueued = false;
    chart.update('none');
    ui.chart.dataset.trainPoints = String(trainPoints.length);
    ui.chart.dataset.valPoints = String(valPoints.length);
  });
}

function resetChart(maxSteps: number): void {
  trainPoints.length = 0;
  valPoints.length = 0;
  const x = chart.options.scales?.x;
  if (x) x.max = maxSteps;
  redrawChart();
}

// ---- state -------------------------------------------------------------------------------------

/** The current run (counted from 1 per Train click) and its steps, for tests and bench/browser.ts as `window.tensorlmPlayground`. */
const runLog: { run: number; steps: { step: number; loss: number; stepSeconds: number }[] } = { run: 0, steps: [] };
(window as unknown as { tensorlmPlayground: typeof runLog }).tensorlmPlayground = runLog;

let worker: Worker;
let ready = false;
let trainState: TrainState = 'idle';
let sampling = false;
/** The model Sample uses (the worker's choice: trained last or loaded last). */
let activeModel: ModelSummary | null = null;
/** Recent steps, for a steadier tokens/s than one step gives. */
const recent: { tokens: number; seconds: number }[] = [];
let tokensPerStep = 0;
/** The first step seen since Train, for the steady-state tokens/s. */
let firstStep: { step: number; trainSeconds: number } | null = null;

function send(m: ToWorker, transfer: Transferable[] = []): void {
  worker.postMessage(m, transfer);
}

function showError(message: string | null): void {
  ui.error.hidden = message === null;
  ui.error.textContent = message ?? '';
}

function fmt(n: number, digits = 4): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

function describeModel(m: ModelSummary): string {
  return `${m.name}: ${m.parameters.toLocaleString('en-US')} parameters, ${m.nLayers} layers, d=${m.dModel}, ${m.nHeads} heads, vocabulary ${m.vocabSize}, context ${m.maxSeqLen}`;
}

function updateButtons(): void {
  ui.train.disabled = !ready;
  ui.stop.disabled = trainState !== 'training';
  ui.resume.disabled = trainState !== 'stopped';
  ui.sample.disabled = !ready || sampling || activeModel === null;
  ui.load.disabled = !ready || (ui.modelFiles.files?.length ?? 0) === 0;
}

function applyPreset(p: PresetInfo | undefined): void {
  if (!p) return;
  ui.batch.value = String(p.batchSize);
  ui.block.value = String(p.blockSize);
}

let presets: PresetInfo[] = [];

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case 'ready': {
      ui.engine.textContent = m.variant
        ? `Web Worker ready: TensorLM on the '${m.backend}' backend (WebAssembly ${m.variant}, one thread)`
        : `Web Worker ready, but WebAssembly SIMD is unavailable (${m.reason ?? 'unknown reason'}): using the slower '${m.backend}' backend`;
      ui.engine.dataset.backend = m.backend;
      presets = m.presets;
      ui.preset.replaceChildren(...presets.map((p) => new Option(p.description, p.name)));
      ui.preset.value = presets.some((p) => p.name === 'micro') ? 'micro' : (presets[0]?.name ?? '');
      applyPreset(presets.find((p) => p.name === ui.preset.value));
      ready = true;
      updateButtons();
      loadRunFromUrl();
      break;
    }
    case 'started':
      activeModel = m.model;
      tokensPerStep = m.tokensPerStep;
      recent.length = 0;
      firstStep = null;
      runLog.run++;
      runLog.steps = [];
      delete ui.tps.dataset.steady;
      ui.modelInfo.textContent = `${describeModel(m.model)}; ${m.trainTokens.toLocaleString('en-US')} training / ${m.valTokens.toLocaleString('en-US')} validation tokens`;
      ui.maxSteps.textContent = String(m.maxSteps);
      ui.step.textContent = '0';
      ui.loss.textContent = ui.valLoss.textContent = ui.tps.textContent = ui.lrNow.textContent = '–';
      ui.evalSample.textContent = '';
      resetChart(m.maxSteps);
      break;
    case 'step': {
      ui.step.textContent = String(m.step);
      ui.loss.textContent = fmt(m.loss);
      ui.lrNow.textContent = m.lr.toExponential(2);
      recent.push({ tokens: tokensPerStep, seconds: m.stepSeconds });
      if (recent.length > 10) recent.shift();
      const tps = recent.reduce((s, r) => s + r.tokens, 0) / recent.reduce((s, r) => s + r.seconds, 0);
      ui.tps.textContent = Math.round(tps).toLocaleString('en-US');
      ui.tps.dataset.value = String(tps);
      ui.tps.dataset.overall = String((m.step * tokensPerStep) / m.trainSeconds);
      // Steady state: every step of this run but its first (which also compiles and warms up).
      if (m.step === 1 || firstStep === null) firstStep = { step: m.step, trainSeconds: m.trainSeconds };
      else ui.tps.dataset.steady = String(((m.step - firstStep.step) * tokensPerStep) / (m.trainSeconds - firstStep.trainSeconds));
      runLog.steps.push({ step: m.step, loss: m.loss, stepSeconds: m.stepSeconds });
      trainPoints.push({ x: m.step, y: m.loss });
      redrawChart();
      break;
    }
    case 'eval':
      ui.valLoss.textContent = fmt(m.valLoss);
      valPoints.push({ x: m.step, y: m.valLoss });
      if (m.sample !== undefined) ui.evalSample.textContent = m.sample;
      redrawChart();
      break;
    case 'state':
      trainState = m.state;
      ui.state.textContent = m.state;
      ui.state.dataset.step = String(m.step);
      updateButtons();
      break;
    case 'sample-progress':
      continuation().textContent = m.text;
      break;
    case 'sample':
      sampling = false;
      continuation().textContent = m.text;
      ui.sampleOutput.dataset.tokens = JSON.stringify(m.tokens);
      ui.sampleOutput.dataset.done = 'true';
      ui.sampleInfo.textContent = `${m.tokens.length} tokens in ${m.seconds.toFixed(2)} s (${Math.round(m.tokens.length / m.seconds)} tokens/s) from ${m.model.name}`;
      updateButtons();
      break;
    case 'loaded':
      activeModel = m.model;
      ui.loadStatus.textContent =
        `Loaded ${describeModel(m.model)}` +
        (m.checkpoint.step !== null ? `; checkpoint of step ${m.checkpoint.step}` : '') +
        (m.checkpoint.bestValLoss !== null ? `, val loss ${fmt(m.checkpoint.bestValLoss)}` : '') +
        (m.checkpoint.verified === true ? ', checksum verified' : '') +
        '. Sample uses it now.';
      ui.loadStatus.dataset.loaded = 'true';
      updateButtons();
      break;
    case 'error':
      if (m.during === 'sample') {
        sampling = false;
        ui.sampleOutput.dataset.done = 'error';
      }
      if (m.during === 'load') ui.loadStatus.textContent = `Could not load the model: ${m.message}`;
      showError(`${m.during}: ${m.message}`);
      updateButtons();
      break;
  }
}

/** The span after the prompt in the sample output, where the continuation goes. */
function continuation(): Element {
  if (ui.sampleOutput.childElementCount < 2) ui.sampleOutput.replaceChildren(document.createElement('span'), document.createElement('span'));
  return ui.sampleOutput.lastElementChild as Element;
}

// ---- controls ------------------------------------------------------------------------------------

function numberInput(el: HTMLInputElement, name: string, integer: boolean, min: number): number {
  const v = Number(el.value);
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) throw new Error(`${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}`);
  return v;
}

ui.preset.addEventListener('change', () => applyPreset(presets.find((p) => p.name === ui.preset.value)));

ui.train.addEventListener('click', () => {
  try {
    showError(null);
    const text = ui.text.value;
    if (text.length < 100) throw new Error('the text is too short: paste at least a few hundred characters');
    send({
      type: 'start',
      text,
      settings: {
        preset: ui.preset.value,
        maxSteps: numberInput(ui.steps, 'steps', true, 1),
        lr: numberInput(ui.lr, 'learning rate', false, 0),
        batchSize: numberInput(ui.batch, 'batch', true, 1),
        blockSize: numberInput(ui.block, 'block', true, 2),
        evalInterval: numberInput(ui.evalEvery, 'evaluate every', true, 0),
      },
    });
  } catch (error) {
    showError((error as Error).message);
  }
});

ui.stop.addEventListener('click', () => {
  ui.stop.disabled = true;
  send({ type: 'stop' });
});

ui.resume.addEventListener('click', () => {
  ui.resume.disabled = true;
  send({ type: 'resume' });
});

ui.sample.addEventListener('click', () => {
  try {
    showError(null);
    const prompt = ui.prompt.value;
    const temperature = numberInput(ui.temperature, 'temperature', false, 0);
    const maxNewTokens = numberInput(ui.length, 'length', true, 1);
    const promptEl = document.createElement('span');
    promptEl.className = 'prompt';
    promptEl.textContent = prompt;
    ui.sampleOutput.replaceChildren(promptEl, document.createElement('span'));
    ui.sampleOutput.dataset.done = 'false';
    delete ui.sampleOutput.dataset.tokens;
    ui.sampleInfo.textContent = 'sampling…';
    sampling = true;
    updateButtons();
    const seed = Math.floor(Math.random() * 2 ** 31);
    ui.sampleOutput.dataset.seed = String(seed);
    send({ type: 'sample', prompt, maxNewTokens, temperature, topK: null, seed });
  } catch (error) {
    showError((error as Error).message);
  }
});

ui.textFile.addEventListener('change', async () => {
  const file = ui.textFile.files?.[0];
  if (!file) return;
  ui.text.value = await file.text();
  showTextInfo();
});

function showTextInfo(): void {
  const chars = new Set(ui.text.value).size;
  ui.textInfo.textContent = `${ui.text.value.length.toLocaleString('en-US')} characters, ${chars} distinct`;
}
ui.text.addEventListener('input', showTextInfo);

// ---- loading a CLI run -------------------------------------------------------------------------------

interface ModelFiles {
  config: unknown;
  tokenizer: unknown;
  weights: ArrayBuffer;
  name: string;
}

/** Sorts picked files into config / tokenizer / weights by content (a tokenizer JSON has a "type" of char or bpe). */
async function readPickedFiles(files: readonly File[]): Promise<ModelFiles> {
  const weights = files.filter((f) => f.name.endsWith('.safetensors'));
  if (weights.length !== 1) throw new Error(`pick exactly one .safetensors file (got ${weights.length})`);
  let config: unknown;
  let tokenizer: unknown;
  for (const f of files.filter((f) => f.name.endsWith('.json'))) {
    let json: unknown;
    try {
      json = JSON.parse(await f.text());
    } catch (error) {
      throw new Error(`${f.name} is not valid JSON (${(error as Error).message})`);
    }
    const type = json !== null && typeof json === 'object' ? (json as { type?: unknown }).type : undefined;
    if (type === 'char' || type === 'bpe') tokenizer = json;
    else config = json;
  }
  if (config === undefined) throw new Error('config.json is missing (the run directory has one: {train, model})');
  if (tokenizer === undefined) throw new Error('tokenizer.json is missing');
  return { config, tokenizer, weights: await weights[0].arrayBuffer(), name: weights[0].name };
}

function sendModel(m: ModelFiles): void {
  ui.loadStatus.textContent = `Loading ${m.name}…`;
  delete ui.loadStatus.dataset.loaded;
  send({ type: 'load-model', config: m.config, tokenizer: m.tokenizer, weights: m.weights, name: m.name }, [m.weights]);
}

ui.modelFiles.addEventListener('change', updateButtons);
ui.load.addEventListener('click', async () => {
  try {
    showError(null);
    sendModel(await readPickedFiles([...(ui.modelFiles.files ?? [])]));
  } catch (error) {
    ui.loadStatus.textContent = `Could not load the model: ${(error as Error).message}`;
  }
});

/** Opened from the dashboard as ?run=<name>: fetch the run's files from the dashboard server. */
async function loadRunFromUrl(): Promise<void> {
  const run = new URLSearchParams(location.search).get('run');
  if (!run) return;
  const base = new URL(`../api/runs/${encodeURIComponent(run)}/files/`, location.href);
  ui.loadStatus.textContent = `Fetching run '${run}' from the dashboard…`;
  try {
    const get = async (name: string) => {
      const r = await fetch(new URL(name, base));
      if (!r.ok) throw new Error(`${name}: HTTP ${r.status}`);
      return r;
    };
    const [config, tokenizer, weights] = await Promise.all([get('config.json').then((r) => r.json()), get('tokenizer.json').then((r) => r.json()), get('best.safetensors').then((r) => r.arrayBuffer())]);
    sendModel({ config, tokenizer, weights, name: `${run}/best.safetensors` });
  } catch (error) {
    ui.loadStatus.textContent = `Could not fetch run '${run}': ${(error as Error).message}`;
  }
}

// ---- start -------------------------------------------------------------------------------------------

ui.text.value = SAMPLE_TEXT;
showTextInfo();
updateButtons();
worker = new TrainerWorker();
worker.onmessage = (e: MessageEvent<FromWorker>) => onMessage(e.data);
worker.onerror = (e: ErrorEvent) => {
  ui.engine.textContent = `the worker failed to start: ${e.message || 'unknown error'}`;
  showError(ui.engine.textContent);
};
