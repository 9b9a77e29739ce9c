/** μP experiments (docs/mup.md): the coordinate check and the μTransfer learning-rate sweep. */
export * from './coord-check.js';
export * from './transfer.js';
export * from './plots.js';
