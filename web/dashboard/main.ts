/**
 * `tensorlm dashboard`'s page: the run list (pick runs to overlay, click one to focus it), live
 * charts of loss / learning rate / tokens per second, the focused run's stats, resolved config
 * and evaluation samples, a streaming generation box, a chat panel (chat models only) and an
 * attention-heatmap view.
 *
 * State lives in plain maps below; each selected run keeps an EventSource open (snapshot on
 * connect, then appended records), and the run list is polled for status and new runs.
 */
import {
  getAttention,
  getRun,
  listRuns,
  runUrl,
  streamChat,
  streamGeneration,
  type ChatMessage,
  type Checkpoint,
  type MetricRecord,
  type RunConfig,
  type RunSummary,
  type TrainRecord,
  type EvalRecord,
} from './api.js';
import { AttentionView } from './attention.js';
import { formatCount, MetricChart, type RunSeries, type XAxis } from './charts.js';

// ---------------------------------------------------------------------------------------------
// DOM

function $<T extends HTMLElement = HTMLElement>(testid: string): T {
  const el = document.querySelector<T>(`[data-testid="${testid}"]`);
  if (!el) throw new Error(`dashboard markup lacks [data-testid="${testid}"]`);
  return el;
}

const ui = {
  runList: $<HTMLUListElement>('run-list'),
  noRuns: $('no-runs'),
  live: $('live-indicator'),
  banners: $('error-banner'),
  focusedRun: $('focused-run'),
  focusedStatus: $('focused-status'),
  stats: $('stats'),
  xToggle: $('x-axis-toggle'),
  logY: $<HTMLInputElement>('log-y'),
  samples: $('samples'),
  samplesCount: $('samples-count'),
  config: $('config'),
  configJsonToggle: $<HTMLButtonElement>('config-json-toggle'),
  generateForm: $<HTMLFormElement>('generate-form'),
  generateRun: $('generate-run'),
  playgroundRunLink: $('playground-run-link') as HTMLAnchorElement,
  prompt: $<HTMLTextAreaElement>('prompt-input'),
  maxTokens: $<HTMLInputElement>('max-tokens-input'),
  temperature: $<HTMLInputElement>('temperature-input'),
  topK: $<HTMLInputElement>('topk-input'),
  samplesInput: $<HTMLInputElement>('samples-input'),
  checkpoint: $<HTMLSelectElement>('checkpoint-select'),
  generate: $<HTMLButtonElement>('generate-button'),
  stop: $<HTMLButtonElement>('stop-button'),
  output: $('generation-output'),
  generationStatus: $('generation-status'),
  chatPanel: $('chat-panel'),
  chatRun: $('chat-run'),
  chatLog: $('chat-log'),
  chatForm: $<HTMLFormElement>('chat-form'),
  chatInput: $<HTMLTextAreaElement>('chat-input'),
  chatTemperature: $<HTMLInputElement>('chat-temperature'),
  chatMaxTokens: $<HTMLInputElement>('chat-max-tokens'),
  chatSend: $<HTMLButtonElement>('chat-send'),
  chatStop: $<HTMLButtonElement>('chat-stop'),
  chatReset: $<HTMLButtonElement>('chat-reset'),
  chatStatus: $('chat-status'),
  attentionForm: $<HTMLFormElement>('attention-form'),
  attentionPrompt: $<HTMLInputElement>('attention-prompt'),
  attentionButton: $<HTMLButtonElement>('attention-button'),
  attentionStatus: $('attention-status'),
};

// ---------------------------------------------------------------------------------------------
// Errors: a banner per source of trouble (keyed, so a repeating failure shows once), cleared when
// that source recovers.

const banners = new Map<string, HTMLElement>();

function showError(key: string, message: string): void {
  let el = banners.get(key);
  if (!el) {
    el = document.createElement('div');
    el.className = 'banner';
    el.setAttribute('role', 'alert');
    const text = document.createElement('span');
    const close = document.createElement('button');
    close.type = 'button';
    close.textContent = '×';
    close.title = 'dismiss';
    close.addEventListener('click', () => clearError(key));
    el.append(text, close);
    banners.set(key, el);
    ui.banners.append(el);
  }
  (el.firstChild as HTMLElement).textContent = message;
}

function clearError(key: string): void {
  banners.get(key)?.remove();
  banners.delete(key);
}

window.addEventListener('error', (e) => showError('page', `Unexpected error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => showError('page', `Unexpected error: ${(e.reason as Error)?.message ?? String(e.reason)}`));

// ---------------------------------------------------------------------------------------------
// State

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#db2777', '#65a30d', '#ca8a04', '#4f46e5', '#0d9488', '#b91c1c'];
const MAX_DEFAULT_SELECTED = 8;

interface RunState {
  summary: RunSummary;
  color: string;
  records: MetricRecord[];
  config: RunConfig | null;
  source: EventSource | null;
  connected: boolean;
  /** The summary's updatedAt when the records were last fetched with GET (null: not yet). */
  loadedAt: string | null;
  loading: boolean;
  item: RunItem;
}

interface RunItem {
  li: HTMLLIElement;
  checkbox: HTMLInputElement;
  name: HTMLButtonElement;
  meta: HTMLElement;
}

const runs = new Map<string, RunState>();
let order: string[] = [];
const selected = new Set<string>();
let focused: string | null = null;
let selectionTouched = false;
let xAxis: XAxis = 'step';
let showConfigJson = false;
let colorCount = 0;

// ---------------------------------------------------------------------------------------------
// Charts

const isTrain = (r: MetricRecord): r is TrainRecord => r.kind === 'train';
const isEval = (r: MetricRecord): r is EvalRecord => r.kind === 'eval';

const lossChart = new MetricChart(
  $('loss-chart'),
  [
    { id: 'train', label: 'train', value: (r) => (isTrain(r) ? r.loss : null) },
    { id: 'val', label: 'val', value: (r) => (isEval(r) ? r.valLoss : null), dashed: true, points: true },
  ],
  { yTitle: 'loss (nats/token)' },
);
const lrChart = new MetricChart($('lr-chart'), [{ id: 'lr', label: '', value: (r) => (isTrain(r) ? r.lr : null) }], {
  yTitle: 'learning rate',
  yFormat: (v) => (v === 0 ? '0' : v.toExponential(1)),
});
const tpsChart = new MetricChart($('tps-chart'), [{ id: 'tps', label: '', value: (r) => (isTrain(r) ? r.tokensPerSecond : null) }], {
  yTitle: 'tokens / s',
  yFormat: formatCount,
});
const charts = [lossChart, lrChart, tpsChart];

function series(): RunSeries[] {
  return order
    .filter((n) => selected.has(n))
    .map((n) => {
      const st = runs.get(n) as RunState;
      return { name: n, color: st.color, records: st.records, focused: n === focused };
    });
}

function redrawCharts(): void {
  const s = series();
  for (const c of charts) c.setRuns(s);
}

// For tests and debugging in the console.
(window as unknown as { __dashboard: unknown }).__dashboard = { runs, selected, charts: { loss: lossChart, lr: lrChart, tps: tpsChart } };

// ---------------------------------------------------------------------------------------------
// Formatting

const fmtLoss = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(4));

function fmtDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtAgo(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleString();
}

/** A run's figures from its records when it has them (live), else from the server's summary. */
function figures(st: RunState): { lastStep: number; bestVal: number | null; lastTrain: number | null } {
  let lastStep = st.summary.lastStep;
  let bestVal = st.summary.bestValLoss;
  let lastTrain = st.summary.lastTrainLoss;
  for (const r of st.records) {
    lastStep = Math.max(lastStep, r.step);
    if (isEval(r) && (bestVal === null || r.valLoss < bestVal)) bestVal = r.valLoss;
  }
  const train = st.records.filter(isTrain);
  if (train.length) lastTrain = train[train.length - 1].loss;
  return { lastStep, bestVal, lastTrain };
}

// ---------------------------------------------------------------------------------------------
// Run list

function createItem(name: string, color: string): RunItem {
  const li = document.createElement('li');
  li.className = 'run-item';
  li.dataset.testid = 'run-item';
  li.dataset.run = name;
  li.style.setProperty('--run-color', color);
  const checkbox = document.createElement('input');
  checkbox.type = 'checkbox';
  checkbox.dataset.testid = 'run-checkbox';
  checkbox.title = 'overlay this run in the charts';
  checkbox.addEventListener('change', () => toggleSelected(name, checkbox.checked));
  const dot = document.createElement('span');
  dot.className = 'dot';
  const body = document.createElement('div');
  body.className = 'run-body';
  const nameEl = document.createElement('button');
  nameEl.type = 'button';
  nameEl.className = 'run-name';
  nameEl.textContent = name;
  nameEl.title = `focus ${name}`;
  nameEl.addEventListener('click', () => focus(name));
  const meta = document.createElement('div');
  meta.className = 'run-meta';
  body.append(nameEl, meta);
  const swatch = document.createElement('span');
  swatch.className = 'swatch';
  li.append(checkbox, dot, body, swatch);
  return { li, checkbox, name: nameEl, meta };
}

function updateItem(name: string): void {
  const st = runs.get(name);
  if (!st) return;
  const { li, checkbox, meta } = st.item;
  const f = figures(st);
  li.dataset.status = st.summary.status;
  li.classList.toggle('selected', selected.has(name));
  li.classList.toggle('focused', name === focused);
  checkbox.checked = selected.has(name);
  const planned = st.summary.plannedSteps;
  meta.textContent = `step ${f.lastStep}${planned ? `/${planned}` : ''} · best val ${fmtLoss(f.bestVal)}`;
  li.title = `${name}\n${st.summary.status}, updated ${fmtAgo(st.summary.updatedAt)}`;
}

function updateLive(): void {
  const running = [...selected].filter((n) => runs.get(n)?.summary.status === 'running');
  const live = running.some((n) => runs.get(n)?.connected);
  ui.live.hidden = !live;
  ui.live.dataset.live = String(live);
  ui.live.textContent = running.length > 1 ? `live · ${running.length} running` : 'live';
  ui.live.title = live ? `updating as ${running.join(', ')} train${running.length === 1 ? 's' : ''}` : '';
}

function toggleSelected(name: string, on: boolean): void {
  selectionTouched = true;
  if (on) selected.add(name);
  else if (name === focused && selected.size === 1) {
    // The focused run stays drawn: something must be.
    runs.get(name)!.item.checkbox.checked = true;
    return;
  } else selected.delete(name);
  if (!on && name === focused) focused = order.find((n) => selected.has(n)) ?? null;
  applySelection();
}

function applySelection(): void {
  syncSources();
  for (const n of order) updateItem(n);
  redrawCharts();
  renderFocus();
  updateLive();
}

function focus(name: string): void {
  if (!runs.has(name)) return;
  focused = name;
  if (!selected.has(name)) {
    selectionTouched = true;
    selected.add(name);
  }
  applySelection();
}

function defaultSelection(list: RunSummary[]): void {
  if (list.length <= MAX_DEFAULT_SELECTED) {
    for (const r of list) selected.add(r.name);
  } else {
    // A study's trials: the best ones by validation loss, then the most recently updated.
    const ranked = [...list].sort(
      (a, b) => (a.bestValLoss ?? Infinity) - (b.bestValLoss ?? Infinity) || Date.parse(b.updatedAt) - Date.parse(a.updatedAt),
    );
    for (const r of ranked.slice(0, MAX_DEFAULT_SELECTED)) selected.add(r.name);
  }
  // Focus what is most likely being watched: the run updated last (running ones first).
  const latest = [...list].sort((a, b) => Number(b.status === 'running') - Number(a.status === 'running') || Date.parse(b.updatedAt) - Date.parse(a.updatedAt));
  focused = latest[0]?.name ?? null;
  if (focused) selected.add(focused);
}

let firstList = true;

async function refreshRuns(): Promise<void> {
  let list: RunSummary[];
  try {
    list = await listRuns();
    clearError('runs');
  } catch (e) {
    showError('runs', `Could not load the run list: ${(e as Error).message}`);
    return;
  }
  let added = false;
  for (const summary of list) {
    const st = runs.get(summary.name);
    if (st) {
      st.summary = summary;
      continue;
    }
    const color = PALETTE[colorCount++ % PALETTE.length];
    runs.set(summary.name, { summary, color, records: [], config: null, source: null, connected: false, loadedAt: null, loading: false, item: createItem(summary.name, color) });
    added = true;
    // Runs that appear later (a study's new trials) join the comparison until the user picks.
    if (!firstList && !selectionTouched && selected.size < MAX_DEFAULT_SELECTED) selected.add(summary.name);
  }
  const names = list.map((r) => r.name);
  const gone = order.filter((n) => !names.includes(n));
  for (const n of gone) {
    const st = runs.get(n);
    st?.source?.close();
    setInterrupted(n, false);
    clearError(`events:${n}`);
    clearError(`load:${n}`);
    st?.item.li.remove();
    runs.delete(n);
    selected.delete(n);
  }
  order = names;
  if (firstList) {
    defaultSelection(list);
    firstList = false;
  }
  if (focused === null || !runs.has(focused)) focused = order.find((n) => selected.has(n)) ?? order[0] ?? null;
  if (focused) selected.add(focused);
  ui.noRuns.hidden = order.length > 0;
  if (added || gone.length) {
    ui.runList.replaceChildren(...order.map((n) => runs.get(n)!.item.li));
    applySelection();
  } else {
    syncSources();
    for (const n of order) updateItem(n);
    // Not the samples or config: re-rendering them would reset their scroll and any selection.
    renderFocusHeader();
    updateLive();
  }
}

// ---------------------------------------------------------------------------------------------
// Live updates. A selected run that is training keeps an EventSource open (snapshot on connect,
// then appended records). A browser opens at most 6 HTTP/1.1 connections to one server and every
// EventSource holds one, so at most MAX_STREAMS are open (the focused run first): the other
// selected runs are loaded with GET /api/runs/:name, again whenever the run list's updatedAt for
// them changes (finished runs: once; running runs past the cap: at the poll's pace).

const MAX_STREAMS = 3;

function syncSources(): void {
  const candidates = new Set([focused, ...order].filter((n): n is string => n !== null && selected.has(n) && runs.get(n)?.summary.status === 'running'));
  const wanted = new Set([...candidates].slice(0, MAX_STREAMS));
  for (const [name, st] of runs) {
    if (wanted.has(name)) {
      if (!st.source) openSource(name, st);
      continue;
    }
    if (st.source) {
      st.source.close();
      st.source = null;
      st.connected = false;
      st.loadedAt = null; // fetch once more: whatever was written after the last event
      setInterrupted(name, false);
      clearError(`events:${name}`);
    }
    if (selected.has(name) && !st.loading && st.loadedAt !== st.summary.updatedAt) void load(name, st);
  }
}

/** Loads a run's records and config with one GET (a run without an event stream). */
async function load(name: string, st: RunState): Promise<void> {
  const stamp = st.summary.updatedAt;
  st.loading = true;
  try {
    const detail = await getRun(name);
    clearError(`load:${name}`);
    st.loadedAt = stamp;
    // A stream opened meanwhile has sent (or will send) its own snapshot.
    if (!st.source && runs.get(name) === st) replaceRecords(name, st, detail.metrics, detail.config);
  } catch (e) {
    showError(`load:${name}`, `Could not load ${name}: ${(e as Error).message}`);
  } finally {
    st.loading = false;
  }
}

/** Runs whose event stream dropped and is reconnecting: one banner for all (the server is likely down). */
const interrupted = new Set<string>();

function setInterrupted(name: string, on: boolean): void {
  if (on === interrupted.has(name)) return;
  if (on) interrupted.add(name);
  else interrupted.delete(name);
  if (interrupted.size === 0) clearError('events');
  else showError('events', `Live updates interrupted for ${[...interrupted].join(', ')}; reconnecting…`);
}

function parse<T>(name: string, e: Event): T | null {
  try {
    return JSON.parse((e as MessageEvent<string>).data) as T;
  } catch (err) {
    showError(`events:${name}`, `Bad live update for ${name}: ${(err as Error).message}`);
    return null;
  }
}

function openSource(name: string, st: RunState): void {
  const source = new EventSource(runUrl(name, '/events'));
  st.source = source;
  source.addEventListener('open', () => {
    st.connected = true;
    setInterrupted(name, false);
    updateLive();
  });
  source.addEventListener('error', () => {
    if (st.source !== source) return;
    st.connected = false;
    updateLive();
    if (source.readyState === EventSource.CLOSED) {
      // The browser gives up (an error status, not an event stream): say so, and stop.
      setInterrupted(name, false);
      showError(`events:${name}`, `Live updates for ${name} failed: the server refused its event stream.`);
    } else setInterrupted(name, true);
  });
  source.addEventListener('snapshot', (e) => {
    const data = parse<{ metrics: MetricRecord[]; config: RunConfig | null }>(name, e);
    if (!data) return;
    st.connected = true;
    setInterrupted(name, false);
    clearError(`events:${name}`);
    replaceRecords(name, st, data.metrics ?? [], data.config ?? null);
  });
  source.addEventListener('metrics', (e) => {
    const data = parse<{ records: MetricRecord[] }>(name, e);
    if (data) appendRecords(name, st, data.records ?? []);
  });
  source.addEventListener('config', (e) => {
    // The server sends { config } (config: null when config.json went away); a bare config is
    // accepted too.
    const data = parse<{ config?: RunConfig | null; train?: unknown }>(name, e);
    if (data === null) return;
    st.config = 'config' in data && !('train' in data) ? (data.config ?? null) : (data as RunConfig);
    if (name === focused) renderConfig();
  });
}

function replaceRecords(name: string, st: RunState, records: MetricRecord[], config: RunConfig | null): void {
  st.records = records;
  st.config = config;
  if (selected.has(name)) redrawCharts();
  updateItem(name);
  if (name === focused) renderFocus();
  updateLive();
}

function appendRecords(name: string, st: RunState, records: MetricRecord[]): void {
  const fresh: MetricRecord[] = [];
  for (const r of records) {
    let last = -Infinity;
    for (let i = st.records.length - 1; i >= 0; i--) {
      if (st.records[i].kind === r.kind) {
        last = st.records[i].step;
        break;
      }
    }
    if (r.step === last) continue; // already have it (a record in both the snapshot and an append)
    if (r.step < last) {
      // The run was resumed from an earlier checkpoint and rewrote its log: reload it whole.
      void resync(name, st);
      return;
    }
    st.records.push(r);
    fresh.push(r);
  }
  if (!fresh.length) return;
  if (selected.has(name)) for (const c of charts) c.append(name, fresh);
  updateItem(name);
  if (name === focused) {
    renderStats();
    if (fresh.some(isEval)) renderSamples();
  }
}

async function resync(name: string, st: RunState): Promise<void> {
  try {
    const detail = await getRun(name);
    replaceRecords(name, st, detail.metrics, detail.config);
  } catch (e) {
    showError(`events:${name}`, `Could not reload ${name}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The focused run: stats, samples, config

/** Everything about the focused run (focus changed, or its records were replaced). */
function renderFocus(): void {
  renderFocusHeader();
  renderSamples();
  renderConfig();
}

/** What the run-list poll can change: name, status, stats, which checkpoints exist. */
function renderFocusHeader(): void {
  const st = focused ? runs.get(focused) : undefined;
  ui.focusedRun.textContent = focused ?? 'No run';
  ui.focusedRun.style.setProperty('--run-color', st?.color ?? 'transparent');
  ui.focusedStatus.textContent = st?.summary.status ?? '';
  ui.focusedStatus.dataset.status = st?.summary.status ?? '';
  ui.generateRun.textContent = focused ? `from ${focused}` : '';
  // The playground loads a run's best checkpoint from this server and samples it in the browser.
  ui.playgroundRunLink.hidden = !(focused && st?.summary.hasBest);
  if (focused) ui.playgroundRunLink.href = `/playground/?run=${encodeURIComponent(focused)}`;
  renderStats();
  updateCheckpointChoice();
  renderChatPanel();
}

function renderStats(): void {
  const st = focused ? runs.get(focused) : undefined;
  if (!st) {
    ui.stats.replaceChildren();
    return;
  }
  const f = figures(st);
  const train = st.records.filter(isTrain);
  const lastTrain = train[train.length - 1];
  const last = st.records[st.records.length - 1];
  const planned = st.summary.plannedSteps;
  const items: [string, string][] = [
    ['step', `${f.lastStep}${planned ? ` / ${planned}` : ''}`],
    ['tokens', last ? formatCount(last.tokens) : '—'],
    ['best val loss', fmtLoss(f.bestVal)],
    ['last train loss', fmtLoss(f.lastTrain)],
    ['tokens / s', lastTrain ? formatCount(lastTrain.tokensPerSecond) : '—'],
    ['elapsed', last ? fmtDuration(last.elapsedSeconds) : '—'],
    ['updated', fmtAgo(st.summary.updatedAt)],
  ];
  ui.stats.replaceChildren(
    ...items.map(([k, v]) => {
      const div = document.createElement('div');
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      div.append(dt, dd);
      return div;
    }),
  );
}

const MAX_SAMPLES = 100;

function renderSamples(): void {
  const st = focused ? runs.get(focused) : undefined;
  const evals = (st?.records ?? []).filter(isEval).reverse();
  ui.samplesCount.textContent = evals.length ? `${evals.length} evaluation${evals.length === 1 ? '' : 's'}, newest first` : '';
  if (!evals.length) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = st ? 'No evaluation yet.' : '';
    ui.samples.replaceChildren(p);
    return;
  }
  ui.samples.replaceChildren(
    ...evals.slice(0, MAX_SAMPLES).map((r) => {
      const item = document.createElement('article');
      item.className = 'sample';
      item.dataset.testid = 'sample-item';
      item.dataset.step = String(r.step);
      const head = document.createElement('header');
      head.innerHTML = '<strong></strong><span></span>';
      (head.firstChild as HTMLElement).textContent = `step ${r.step}`;
      (head.lastChild as HTMLElement).textContent = `val ${fmtLoss(r.valLoss)} · train ${fmtLoss(r.trainLoss)} · ${formatCount(r.tokens)} tokens`;
      const pre = document.createElement('pre');
      pre.textContent = r.sample ?? '(no sample at this evaluation)';
      if (r.sample === undefined) pre.classList.add('muted');
      item.append(head, pre);
      return item;
    }),
  );
}

function fmtValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function renderConfig(): void {
  const st = focused ? runs.get(focused) : undefined;
  const config = st?.config ?? null;
  ui.configJsonToggle.textContent = showConfigJson ? 'table' : 'JSON';
  if (!config) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = st ? 'No config.json in this run yet.' : '';
    ui.config.replaceChildren(p);
    return;
  }
  if (showConfigJson) {
    const pre = document.createElement('pre');
    pre.textContent = JSON.stringify(config, null, 2);
    ui.config.replaceChildren(pre);
    return;
  }
  const table = document.createElement('table');
  for (const section of ['train', 'model'] as const) {
    const values = config[section];
    if (!values || typeof values !== 'object') continue;
    const tbody = document.createElement('tbody');
    const head = document.createElement('tr');
    head.innerHTML = '<th colspan="2"></th>';
    (head.firstChild as HTMLElement).textContent = section;
    tbody.append(head);
    for (const [k, v] of Object.entries(values)) {
      const tr = document.createElement('tr');
      const key = document.createElement('td');
      key.textContent = k;
      const val = document.createElement('td');
      val.textContent = fmtValue(v);
      tr.append(key, val);
      tbody.append(tr);
    }
    table.append(tbody);
  }
  ui.config.replaceChildren(table);
}

ui.configJsonToggle.addEventListener('click', () => {
  showConfigJson = !showConfigJson;
  renderConfig();
});

// ---------------------------------------------------------------------------------------------
// Chart controls

ui.xToggle.addEventListener('click', (e) => {
  const button = (e.target as HTMLElement).closest<HTMLButtonElement>('button[data-x]');
  if (!button) return;
  xAxis = button.dataset.x as XAxis;
  for (const b of ui.xToggle.querySelectorAll('button')) b.classList.toggle('active', b === button);
  const s = series();
  for (const c of charts) c.setXAxis(xAxis, s);
});

ui.logY.addEventListener('change', () => lossChart.setLogY(ui.logY.checked));

document.querySelector('[data-action="select-all"]')?.addEventListener('click', () => {
  selectionTouched = true;
  for (const n of order) selected.add(n);
  applySelection();
});
document.querySelector('[data-action="select-focused"]')?.addEventListener('click', () => {
  selectionTouched = true;
  selected.clear();
  if (focused) selected.add(focused);
  applySelection();
});

// ---------------------------------------------------------------------------------------------
// Generation

let generation: AbortController | null = null;
/** The checkpoint the user picked; a run that lacks it uses the other one meanwhile. */
let preferredCheckpoint: Checkpoint = 'best';
ui.checkpoint.addEventListener('change', () => (preferredCheckpoint = ui.checkpoint.value as Checkpoint));

function updateCheckpointChoice(): void {
  const st = focused ? runs.get(focused) : undefined;
  const hasBest = st?.summary.hasBest ?? false;
  const hasLatest = st?.summary.hasLatest ?? false;
  const [best, latest] = [...ui.checkpoint.options];
  best.disabled = !hasBest;
  latest.disabled = !hasLatest;
  const has = (c: Checkpoint) => (c === 'best' ? hasBest : hasLatest);
  ui.checkpoint.value = has(preferredCheckpoint) || !(hasBest || hasLatest) ? preferredCheckpoint : preferredCheckpoint === 'best' ? 'latest' : 'best';
  const none = !hasBest && !hasLatest;
  if (!generation) ui.generate.disabled = none;
  if (!chatReply) ui.chatSend.disabled = none;
  ui.attentionButton.disabled = none;
  ui.generate.title = none ? 'this run has no checkpoint yet (one is saved at the first evaluation)' : '';
}

function numberOf(input: HTMLInputElement): number | undefined {
  const v = input.valueAsNumber;
  return Number.isFinite(v) ? v : undefined;
}

ui.generateForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void generate();
});
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) ui.generateForm.requestSubmit();
});
ui.stop.addEventListener('click', () => generation?.abort());

async function generate(): Promise<void> {
  if (!focused || generation) return;
  const run = focused;
  const controller = new AbortController();
  generation = controller;
  ui.generate.disabled = true;
  ui.stop.disabled = false;
  ui.output.dataset.state = 'streaming';
  ui.output.replaceChildren();
  // Several samples are the rows of one batched run: each row's text goes after its own copy of
  // the prompt, with a separator line between rows (as `tensorlm sample --num-samples` prints them).
  const samples = Math.min(8, Math.max(1, Math.round(numberOf(ui.samplesInput) ?? 1)));
  const textEls = Array.from({ length: samples }, (_, row) => {
    if (row > 0) ui.output.append('\n---------------\n');
    const promptEl = document.createElement('span');
    promptEl.className = 'prompt';
    promptEl.textContent = ui.prompt.value;
    const el = document.createElement('span');
    el.dataset.testid = row === 0 ? 'generated-text' : `generated-text-${row}`;
    ui.output.append(promptEl, el);
    return el;
  });
  ui.generationStatus.textContent = `generating from ${run} (${ui.checkpoint.value} checkpoint)…`;
  clearError('generate');
  let count = 0;
  const topK = numberOf(ui.topK);
  try {
    await streamGeneration(
      run,
      {
        prompt: ui.prompt.value,
        maxNewTokens: numberOf(ui.maxTokens),
        temperature: numberOf(ui.temperature),
        topK: topK && topK > 0 ? topK : undefined,
        checkpoint: ui.checkpoint.value as Checkpoint,
        ...(samples > 1 ? { samples } : {}),
      },
      {
        onToken: (text, _index, row) => {
          const textEl = textEls[row] ?? textEls[0];
          // Follow the text as it grows, unless the reader scrolled up.
          const atBottom = ui.output.scrollHeight - ui.output.scrollTop - ui.output.clientHeight < 24;
          textEl.append(text);
          if (atBottom) ui.output.scrollTop = ui.output.scrollHeight;
          count++;
          textEl.dataset.tokens = String(Number(textEl.dataset.tokens ?? 0) + 1);
          ui.generationStatus.textContent = `${count} token${count === 1 ? '' : 's'}…`;
        },
        onDone: ({ tokens, tokensPerSecond, checkpoint }) => {
          ui.generationStatus.textContent = `done: ${tokens} tokens at ${tokensPerSecond.toFixed(1)} tokens/s${checkpoint ? ` (${checkpoint} checkpoint)` : ''}`;
        },
      },
      controller.signal,
    );
    ui.output.dataset.state = 'done';
  } catch (e) {
    if (controller.signal.aborted) {
      ui.output.dataset.state = 'stopped';
      ui.generationStatus.textContent = `stopped after ${count} token${count === 1 ? '' : 's'}`;
    } else {
      ui.output.dataset.state = 'error';
      ui.generationStatus.textContent = 'failed';
      showError('generate', `Generation failed: ${(e as Error).message}`);
    }
  } finally {
    generation = null;
    ui.stop.disabled = true;
    updateCheckpointChoice();
  }
}

// ---------------------------------------------------------------------------------------------
// Chat. The server keeps no conversation: the page holds it and sends it whole each turn (the
// server renders it in the chat template and streams the reply up to <|assistant_end|>). A
// conversation belongs to one run; focusing another run starts a new one.

/** The messages sent with the next turn, each with its bubble. */
const chatMessages: { message: ChatMessage; bubble: HTMLElement }[] = [];
/** The run the conversation is with (null: the focused run is not a chat model). */
let chatRun: string | null = null;
/** The focused run the panel was last rendered for: a change of focus starts a new conversation. */
let chatFocus: string | null = null;
let chatReply: AbortController | null = null;
/** Bumped by Reset: a reply still winding down from an earlier conversation must not touch this one. */
let chatEpoch = 0;

function renderChatPanel(): void {
  const st = focused ? runs.get(focused) : undefined;
  const isChat = st?.summary.chat ?? false;
  ui.chatPanel.hidden = !isChat;
  if (focused !== chatFocus) {
    resetChat();
    chatFocus = focused;
  }
  chatRun = isChat ? focused : null;
  ui.chatRun.textContent = isChat && focused ? `with ${focused}` : '';
}

function resetChat(): void {
  chatEpoch++;
  chatReply?.abort();
  chatReply = null;
  ui.chatStop.disabled = true;
  chatMessages.length = 0;
  ui.chatLog.replaceChildren();
  ui.chatStatus.textContent = '';
  clearError('chat');
}

function chatBubble(role: ChatMessage['role'], text: string): HTMLElement {
  const el = document.createElement('div');
  el.className = 'chat-message';
  el.dataset.testid = 'chat-message';
  el.dataset.role = role;
  el.textContent = text;
  ui.chatLog.append(el);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
  return el;
}

/** A turn that got no reply leaves the conversation (the template needs user/assistant to alternate). */
function excludeTurn(user: HTMLElement, reply: HTMLElement, note: string): void {
  chatMessages.pop();
  user.classList.add('excluded');
  user.title = 'not part of the conversation any more';
  const span = document.createElement('span');
  span.className = 'note';
  span.textContent = note;
  reply.append(span);
}

ui.chatForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void sendChat();
});
ui.chatInput.addEventListener('keydown', (e) => {
  // Enter sends; Shift+Enter is a new line; Enter while composing (IME) is the composition's.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.chatForm.requestSubmit();
  }
});
ui.chatStop.addEventListener('click', () => chatReply?.abort());
ui.chatReset.addEventListener('click', () => resetChat());

async function sendChat(): Promise<void> {
  const text = ui.chatInput.value;
  if (!chatRun || chatReply || text.trim() === '') return;
  const run = chatRun;
  const controller = new AbortController();
  chatReply = controller;
  ui.chatInput.value = '';
  const userBubble = chatBubble('user', text);
  chatMessages.push({ message: { role: 'user', content: text }, bubble: userBubble });
  const replyBubble = chatBubble('assistant', '');
  replyBubble.dataset.state = 'streaming';
  const replyText = document.createElement('span');
  replyText.dataset.testid = 'chat-reply-text';
  replyBubble.append(replyText);
  ui.chatSend.disabled = true;
  ui.chatStop.disabled = false;
  ui.chatStatus.textContent = `${run} is replying…`;
  clearError('chat');
  let reply = '';
  let count = 0;
  const epoch = chatEpoch;
  const finish = (state: string) => {
    if (epoch !== chatEpoch) return; // reset meanwhile: the bubbles are gone
    replyBubble.dataset.state = state;
    replyBubble.dataset.tokens = String(count);
    if (reply.trim() !== '') chatMessages.push({ message: { role: 'assistant', content: reply }, bubble: replyBubble });
    else excludeTurn(userBubble, replyBubble, state === 'error' ? '(failed)' : '(no reply)');
  };
  try {
    await streamChat(
      run,
      {
        messages: chatMessages.map((m) => m.message),
        temperature: numberOf(ui.chatTemperature),
        maxNewTokens: numberOf(ui.chatMaxTokens),
        checkpoint: ui.checkpoint.value as Checkpoint,
      },
      {
        onToken: (t) => {
          const atBottom = ui.chatLog.scrollHeight - ui.chatLog.scrollTop - ui.chatLog.clientHeight < 24;
          reply += t;
          replyText.append(t);
          count++;
          replyBubble.dataset.tokens = String(count);
          if (atBottom) ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
        },
        onDone: ({ tokens, tokensPerSecond, stopReason, dropped }) => {
          const cut = stopReason === 'length' ? ' (cut at max tokens)' : '';
          const older = dropped ? ` · the ${dropped} oldest messages no longer fit the model's context` : '';
          ui.chatStatus.textContent = `${tokens} tokens at ${tokensPerSecond.toFixed(1)} tokens/s${cut}${older}`;
        },
      },
      controller.signal,
    );
    finish('done');
  } catch (e) {
    if (epoch !== chatEpoch) {
      // Reset (or another run focused) while replying: nothing of this turn remains to update.
    } else if (controller.signal.aborted) {
      // The partial reply stays in the conversation, as `tensorlm chat` keeps it.
      finish('stopped');
      ui.chatStatus.textContent = `stopped after ${count} token${count === 1 ? '' : 's'}`;
    } else {
      finish('error');
      ui.chatStatus.textContent = 'failed';
      showError('chat', `Chat failed: ${(e as Error).message}`);
    }
  } finally {
    if (chatReply === controller) {
      chatReply = null;
      ui.chatStop.disabled = true;
    }
    updateCheckpointChoice();
  }
}

// ---------------------------------------------------------------------------------------------
// Attention

const attention = new AttentionView(
  $('attention-grid'),
  $('attention-detail'),
  $<HTMLCanvasElement>('attention-detail-canvas'),
  $('attention-detail-title'),
  $('attention-tooltip'),
);

ui.attentionForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void showAttention();
});

async function showAttention(): Promise<void> {
  if (!focused) return;
  const run = focused;
  const prompt = ui.attentionPrompt.value;
  if (!prompt) {
    showError('attention', 'Attention: type a short prompt first.');
    return;
  }
  ui.attentionButton.disabled = true;
  ui.attentionStatus.textContent = 'computing…';
  clearError('attention');
  try {
    const result = await getAttention(run, prompt, ui.checkpoint.value as Checkpoint);
    attention.show(result);
    ui.attentionStatus.textContent = `${run}: ${result.tokens.length} tokens, ${result.nLayers} layers × ${result.nHeads} heads`;
  } catch (e) {
    attention.clear();
    ui.attentionStatus.textContent = 'failed';
    showError('attention', `Attention failed: ${(e as Error).message}`);
  } finally {
    updateCheckpointChoice();
  }
}

// ---------------------------------------------------------------------------------------------
// Start: the run list now and every few seconds (status, new runs, checkpoints).

const POLL_MS = 3000;

async function poll(): Promise<void> {
  await refreshRuns();
  setTimeout(() => void poll(), POLL_MS);
}

void poll();
