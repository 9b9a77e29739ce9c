/** What the post-training stage tests share. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Generator } from '../../src/tensor/random.js';
import { sft } from '../../src/posttrain/sft.js';
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

/** Short words, all in the base's alphabet. */
const CHAT_WORDS = ['cat', 'dog', 'sun', 'map', 'ant', 'box', 'cup', 'egg', 'fig', 'hat', 'ink', 'jam'];

/**
 * A chat run fine-tuned from `base` on one-turn conversations about a dozen short words, each seen
 * many times (`turn(word)` gives the user and assistant text): 80 steps at lr 3e-3 are enough for
 * greedy replies that are not blank, where the built-in tasks' random strings would need far more.
 * Its run directory.
 */
export async function wordChatRun(base: string, outDir: string, turn: (word: string) => [user: string, assistant: string], name = 'chat'): Promise<string> {
  const data = join(outDir, `${name}.jsonl`);
  const line = (w: string) => {
    const [user, assistant] = turn(w);
    return JSON.stringify({ messages: [{ role: 'user', content: user }, { role: 'assistant', content: assistant }] });
  };
  writeFileSync(data, Array.from({ length: 6 }, () => CHAT_WORDS.map(line)).flat().join('\n') + '\n');
  const r = await sft({ base, outDir, name, data, lr: 3e-3, evalExamples: 4, batchSize: 4, maxSteps: 80, warmupSteps: 1, evalInterval: 80, evalIters: 1 });
  return r.files.dir;
}
