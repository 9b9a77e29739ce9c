/**
 * Backend registry. A backend registers the kernels it implements; the active kernel table is the
 * reference table overlaid with them, so any kernel a backend lacks still works (tfjs-style).
 *
 * Nothing happens at import. Which backends exist depends on the platform, so the program's entry
 * point names an installer (`setBackendInstaller`: src/index.ts installs Node's wasm + blas,
 * src/browser.ts only wasm) and the registry runs it, once, on the first kernel call or registry
 * query. The default backend is chosen at that first kernel call (or the first `getBackend()`):
 * TENSORLM_BACKEND when set, else the fastest available. A program that imports only deep modules
 * and sets no installer runs on the reference `js` kernels.
 */
import { backendEnv } from '../env.js';
import { jsKernels } from './js/index.js';
import type { Kernels } from './kernels.js';

export interface BackendInfo {
  name: string;
  /** Kernels this backend replaces; the rest come from `base` (or the reference). */
  kernels: Partial<Kernels>;
  /** Another registered backend whose kernels fill the gaps (e.g. blas builds on wasm). */
  base?: string;
  /** Higher wins when choosing the default. */
  priority: number;
  /** Why the backend cannot run here, or null when it can. */
  unavailable?: string | null;
  /**
   * From this many query positions up, 'auto' attention takes the flash path on this backend
   * (ops/flash-attention.ts); unset: FLASH_ATTENTION_MIN_SEQ_LEN. A backend whose flash kernels
   * beat its materialised path at shorter sequences says so here.
   */
  flashAttentionMinSeqLen?: number;
}

/** Registers a platform's backends (with `registerBackend`); must be safe to run more than once. */
export type BackendInstaller = () => void;

const backends = new Map<string, BackendInfo>([['js', { name: 'js', kernels: {}, priority: 0, unavailable: null }]]);
/** The backend in use, or null until the default is chosen or `setBackend` is called. */
let activeName: string | null = null;
/** Whether the active backend is the automatic default (not `setBackend`'s choice). */
let automatic = false;
let installer: BackendInstaller | null = null;
/** The installer that last ran, so each one runs once however often the registry is queried. */
let installed: BackendInstaller | null = null;

/**
 * A stand-in for every kernel until a backend is chosen: the first call chooses the default,
 * which replaces the live `kernels` binding, and is forwarded to it. Later calls never come here
 * (except through a table someone copied before the choice, which keeps forwarding correctly).
 */
function lazyKernels(): Kernels {
  const table: Record<string, (...args: unknown[]) => unknown> = {};
  for (const name of Object.keys(jsKernels)) {
    table[name] = (...args: unknown[]): unknown => {
      if (activeName === null) chooseDefault();
      return (kernels as unknown as Record<string, (...a: unknown[]) => unknown>)[name](...args);
    };
  }
  return table as unknown as Kernels;
}

/**
 * The kernel table every op calls. Ops import this live binding; it is replaced wholesale on a
 * backend switch, so each lookup stays a plain property read. Until the first call it holds the
 * lazy stand-ins above.
 */
export let kernels: Kernels = lazyKernels();

/**
 * Names the function that registers this platform's backends. It only stores the function: it
 * runs on the first kernel call or registry query (or the next one, when it replaces an
 * installer that already ran). Entry points call this; libraries built on TensorLM need not.
 */
export function setBackendInstaller(install: BackendInstaller): void {
  if (typeof install !== 'function') throw new TypeError(`setBackendInstaller: expected a function, got ${typeof install}`);
  installer = install;
  if (automatic && install !== installed) {
    // A kernel ran before this installer was named (e.g. a module computing a constant while the
    // entry point's imports were still being evaluated): the default was chosen among fewer
    // backends, so choose it again, lazily, once these are installed.
    activeName = null;
    automatic = false;
    kernels = lazyKernels();
  }
}

function ensureInstalled(): void {
  const install = installer;
  if (install === null || install === installed) return;
  // Marked first: the installer registers backends, and a query from inside it must not rerun it.
  installed = install;
  try {
    install();
  } catch (e) {
    installed = null;
    throw e;
  }
}

const warned = new Set<string>();

/** Prints a warning once: Node's process warning where there is one, else the console. */
function warn(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  const proc = (globalThis as { process?: { emitWarning?: (message: string) => void } }).process;
  if (typeof proc?.emitWarning === 'function') proc.emitWarning(message);
  else console.warn(message);
}

/**
 * Chooses the default backend: TENSORLM_BACKEND when set (an unknown name is an error; one that
 * cannot run here falls back to the fastest with a warning), else the fastest available, with one
 * warning for each faster registered backend that cannot run here (e.g. no BLAS installed).
 */
function chooseDefault(): string {
  ensureInstalled();
  const requested = backendEnv();
  let name = fastestBackend();
  if (requested !== undefined) {
    const reason = backendUnavailableReason(requested);
    if (reason === undefined) throw new Error(`TENSORLM_BACKEND=${requested}: unknown backend (registered: ${[...backends.keys()].join(', ')}${installer === null ? "; no backend installer is set: import 'tensorlm' (or call setBackendInstaller) before the first tensor op" : ''})`);
    if (reason) warn(`TENSORLM_BACKEND=${requested} is not available (${reason}); using '${name}'`);
    else name = requested;
  } else {
    const chosen = backends.get(name) as BackendInfo;
    for (const b of backends.values()) {
      if (b.unavailable && b.priority > chosen.priority) warn(`tensorlm: backend '${b.name}' is not available (${b.unavailable}); using the slower '${name}'`);
    }
  }
  activate(name);
  automatic = true;
  return name;
}

export function registerBackend(info: BackendInfo): void {
  backends.set(info.name, info);
}

/**
 * Changes a registered backend after the fact (a lazily loaded library replacing its stand-in
 * kernel, or turning out not to load; a backend moving onto another base), and refreshes the active table when it builds on that
 * backend; when the active backend can no longer run, switches to the fastest one that can.
 * Returns the active backend's name afterwards (null when none is chosen yet).
 */
export function updateBackend(name: string, change: Partial<Pick<BackendInfo, 'kernels' | 'unavailable' | 'base'>>): string | null {
  const info = backends.get(name);
  if (!info) throw new Error(`updateBackend: unknown backend '${name}' (registered: ${[...backends.keys()].join(', ')})`);
  backends.set(name, { ...info, ...change });
  if (activeName !== null && dependsOn(activeName, name)) {
    activate(availableChain(activeName) ? activeName : fastestBackend());
  }
  return activeName;
}

/** A backend and the bases under it, top down. */
function* chain(name: string): Generator<BackendInfo> {
  for (let b: BackendInfo | undefined = backends.get(name); b !== undefined; b = b.base ? backends.get(b.base) : undefined) yield b;
}

function dependsOn(name: string, on: string): boolean {
  for (const b of chain(name)) if (b.name === on) return true;
  return false;
}

function availableChain(name: string): boolean {
  for (const b of chain(name)) if (b.unavailable) return false;
  return true;
}

/** Names of registered backends that can run on this machine. */
export function listBackends(): string[] {
  ensureInstalled();
  return [...backends.values()].filter((b) => !b.unavailable).map((b) => b.name);
}

/** Why a registered backend cannot run here (null when it can, undefined when unknown). */
export function backendUnavailableReason(name: string): string | null | undefined {
  ensureInstalled();
  const info = backends.get(name);
  return info ? (info.unavailable ?? null) : undefined;
}

/** The backend in use; the first call chooses the default when nothing chose one yet. */
export function getBackend(): string {
  return activeName ?? chooseDefault();
}

/** The flash-attention threshold the active backend (or the first backend under it that sets one) sets, if any. */
export function activeFlashAttentionMinSeqLen(): number | undefined {
  for (const b of chain(getBackend())) if (b.flashAttentionMinSeqLen !== undefined) return b.flashAttentionMinSeqLen;
  return undefined;
}

/** The full kernel table of a backend: its own kernels over its base chain, over the reference. */
export function resolveKernels(name: string): Kernels {
  ensureInstalled();
  const info = backends.get(name);
  if (!info) throw new Error(`unknown backend '${name}' (registered: ${[...backends.keys()].join(', ')})`);
  if (info.unavailable) throw new Error(`backend '${name}' is not available: ${info.unavailable}`);
  const base = info.base ? resolveKernels(info.base) : jsKernels;
  return { ...base, ...info.kernels };
}

/** Switches every op to the named backend's kernels, like choosing a device. */
export function setBackend(name: string): void {
  activate(name);
  automatic = false;
}

function activate(name: string): void {
  kernels = resolveKernels(name);
  activeName = name;
}

/** The highest-priority backend that can run here, every backend under it included. */
export function fastestBackend(): string {
  ensureInstalled();
  let best = backends.get('js') as BackendInfo;
  for (const b of backends.values()) if (b.priority > best.priority && availableChain(b.name)) best = b;
  return best.name;
}

/** The reference kernels, for tests that compare a backend against the oracle. */
export const referenceKernels: Readonly<Kernels> = jsKernels;
