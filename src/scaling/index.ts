/** Scaling-law fitting: Chinchilla approaches 3 and 2, the data loader and the plots (docs/scaling.md). */
import { installNodeBackends } from '../backends/node.js';
import { setBackendInstaller } from '../backends/registry.js';

// A package entry of its own (tensorlm/scaling) that imports library modules directly, not src/index.ts:
// it names Node's backends too (this only stores the installer; nothing loads until a kernel runs).
setBackendInstaller(installNodeBackends);

export * from './lbfgs.js';
export * from './chinchilla.js';
export * from './isoflop.js';
export * from './data.js';
export * from './plot.js';
export * from './report.js';
export * from './sweep.js';
