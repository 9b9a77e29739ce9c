/**
 * vitest setup file (vitest.config.ts `setupFiles`): runs in every test file's module graph before
 * the file itself. Most tests import deep modules (e.g. ../../src/tensor/tensor.js), not the
 * package entry that names Node's backends, so this names them here: tests keep running on the
 * default a program gets (the fastest available backend, or TENSORLM_BACKEND). It only stores the
 * installer; the backends are registered on the first kernel call, as in a program.
 */
import { installNodeBackends } from '../../src/backends/node.js';
import { setBackendInstaller } from '../../src/backends/registry.js';

setBackendInstaller(installNodeBackends);
