/**
 * Backend registry. A backend registers the kernels it implements; the active kernel table is the
 * reference table overlaid with them, so any kernel a backend lacks still works (tfjs-style).
 */
import { jsKernels } from './js/index.js';
import type { Kernels } from './kernels.js';

export interface BackendInfo {
  name: string;
  kernels: Partial<Kernels>;
  /** Higher wins when choosing the default. */
  priority: number;
}

const backends = new Map<string, BackendInfo>([['js', { name: 'js', kernels: {}, priority: 0 }]]);
let activeName = 'js';
/** The kernel table every op calls. Replaced wholesale on backend switch, so lookups stay monomorphic. */
export let kernels: Kernels = { ...jsKernels };

export function registerBackend(info: BackendInfo): void {
  backends.set(info.name, info);
}

export function listBackends(): string[] {
  return [...backends.keys()];
}

export function getBackend(): string {
  return activeName;
}

export function setBackend(name: string): void {
  const info = backends.get(name);
  if (!info) throw new Error(`setBackend: unknown backend '${name}' (available: ${listBackends().join(', ')})`);
  kernels = { ...jsKernels, ...info.kernels };
  activeName = name;
}

/** The reference kernels, for tests that compare a backend against the oracle. */
export const referenceKernels: Readonly<Kernels> = jsKernels;
