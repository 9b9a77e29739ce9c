/** Every tensor op against PyTorch: outputs and input gradients (tests/golden/ops.json). */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as T from '../../src/index.js';
import { loadGolden } from '../helpers/golden.js';
import { runGoldenCase } from '../helpers/golden-ops.js';

const { cases } = loadGolden('ops.json');
const initialBackend = T.getBackend();

describe.each(T.listBackends())('ops match PyTorch on the %s backend', (backend) => {
  beforeAll(() => T.setBackend(backend));
  afterAll(() => T.setBackend(initialBackend));
  for (const c of cases) it(c.name, () => runGoldenCase(c));
});
