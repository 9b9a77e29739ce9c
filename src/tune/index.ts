/** Hyperparameter search (`tensorlm tune`): spaces, samplers, pruners, storages, the worker loop. */
export * from './space.js';
export * from './types.js';
export * from './samplers.js';
export * from './pruners.js';
export * from './objective.js';
export * from './study.js';
export * from './plots.js';
export * from './storage/index.js';
