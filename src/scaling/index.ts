/** Scaling-law fitting: Chinchilla approaches 3 and 2, the data loader and the plots (docs/scaling.md). */
export * from './lbfgs.js';
export * from './chinchilla.js';
export * from './isoflop.js';
export * from './data.js';
export * from './plot.js';
export * from './report.js';
export * from './sweep.js';
