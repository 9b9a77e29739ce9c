/** Hyperparameter search (`tensorlm tune`): spaces, samplers, pruners, storages, the worker loop. */
import { installNodeBackends } from '../backends/node.js';
import { setBackendInstaller } from '../backends/registry.js';

// A package entry of its own (tensorlm/tune) that imports library modules directly, not src/index.ts:
// it names Node's backends too (this only stores the installer; nothing loads until a kernel runs).
setBackendInstaller(installNodeBackends);

export * from './space.js';
export * from './types.js';
export * from './samplers.js';
export * from './pruners.js';
export * from './objective.js';
export * from './study.js';
export * from './plots.js';
export * from './storage/index.js';
