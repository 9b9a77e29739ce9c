/** What the model tests import from the library, in one place. */
export { nn, noGrad, Tensor, TransformerLM, Generator, randint, tensor, manualSeed, getBackend, setBackend, listBackends } from '../../src/index.js';
export type { TransformerConfigInput as TransformerConfigInputAlias } from '../../src/models/config.js';
