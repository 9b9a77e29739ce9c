/** μP experiments (docs/mup.md): the coordinate check and the μTransfer learning-rate sweep. */
import { installNodeBackends } from '../backends/node.js';
import { setBackendInstaller } from '../backends/registry.js';

// A package entry of its own (tensorlm/mup) that imports library modules directly, not src/index.ts:
// it names Node's backends too (this only stores the installer; nothing loads until a kernel runs).
setBackendInstaller(installNodeBackends);

export * from './coord-check.js';
export * from './transfer.js';
export * from './plots.js';
