/** What the post-training stage tests share. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator } from '../../src/tensor/random.js';
import { train } from '../../src/train/trainer.js';
import { smallTrainConfig } from '../train/helpers.js';

/** A base model that has seen lowercase words (the tasks' alphabet), trained for a few steps; its run directory. */
export async function baseRun(dir: string): Promise<string> {
  const data = join(dir, 'words.txt');
  const g = new Generator(5);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  writeFileSync(data, Array.from({ length: 3000 }, () => Array.from({ length: 1 + g.randint(0, 6) }, () => letters[g.randint(0, 26)]).join('')).join(' '));
  const r = await train(smallTrainConfig(dir, data, { name: 'base', maxSteps: 6, evalInterval: 6, sampleTokens: 0 }));
  return r.files.dir;
}
