/**
 * Backend registry. A backend registers the kernels it implements; the active kernel table is the
 * reference table overlaid with them, so any kernel a backend lacks still works (tfjs-style).
 */
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
}

const backends = new Map<string, BackendInfo>([['js', { name: 'js', kernels: {}, priority: 0, unavailable: null }]]);
let activeName = 'js';
/**
 * The kernel table every op calls. Ops import this live binding; it is replaced wholesale on a
 * backend switch, so each lookup stays a plain property read.
 */
export let kernels: Kernels = { ...jsKernels };

export function registerBackend(info: BackendInfo): void {
  backends.set(info.name, info);
}

/** Names of registered backends that can run on this machine. */
export function listBackends(): string[] {
  return [...backends.values()].filter((b) => !b.unavailable).map((b) => b.name);
}

/** Why a registered backend cannot run here (null when it can, undefined when unknown). */
export function backendUnavailableReason(name: string): string | null | undefined {
  const info = backends.get(name);
  return info ? (info.unavailable ?? null) : undefined;
}

export function getBackend(): string {
  return activeName;
}

/** The full kernel table of a backend: its own kernels over its base chain, over the reference. */
export function resolveKernels(name: string): Kernels {
  const info = backends.get(name);
  if (!info) throw new Error(`unknown backend '${name}' (registered: ${[...backends.keys()].join(', ')})`);
  if (info.unavailable) throw new Error(`backend '${name}' is not available: ${info.unavailable}`);
  const base = info.base ? resolveKernels(info.base) : jsKernels;
  return { ...base, ...info.kernels };
}

/** Switches every op to the named backend's kernels, like choosing a device. */
export function setBackend(name: string): void {
  kernels = resolveKernels(name);
  activeName = name;
}

/** The highest-priority backend that can run here. */
export function fastestBackend(): string {
  let best = backends.get('js') as BackendInfo;
  for (const b of backends.values()) if (!b.unavailable && b.priority > best.priority) best = b;
  return best.name;
}

/** The reference kernels, for tests that compare a backend against the oracle. */
export const referenceKernels: Readonly<Kernels> = jsKernels;
