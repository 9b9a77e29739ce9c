import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { BPETokenizer } from '../../src/tokenizers/index.js';
import { makeTempDir, REPO_ROOT } from './helpers.js';

const run = promisify(execFile);
const tmp = makeTempDir();
afterAll(tmp.cleanup);

/** `npx tsx src/cli/main.ts …` from the repository root, as a user would run it. */
async function tensorlm(...args: string[]): Promise<string> {
  const { stdout } = await run('npx', ['--no-install', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: '1', npm_config_loglevel: 'error' },
  });
  return stdout;
}

describe('tensorlm tokenizer (CLI)', () => {
  it('trains, encodes and decodes', async () => {
    const data = join(tmp.dir, 'corpus.txt');
    writeFileSync(data, 'To be, or not to be, that is the question:\nWhether tis nobler in the mind to suffer\n'.repeat(40));
    const out = join(tmp.dir, 'tok.json');

    const trained = await tensorlm('tokenizer', 'train', '--data', data, '--vocab-size', '300', '--out', out, '--special-tokens', '<|endoftext|>');
    expect(trained).toMatch(/^trained BPE tokenizer: vocab 300 \(256 bytes \+ 43 merges \+ 1 special\) on 3,360 bytes in \d+\.\d\d s → .*tok\.json\n$/);

    const tok = BPETokenizer.load(out);
    const text = 'To be, or not to be<|endoftext|>';
    const ids = tok.encode(text);
    expect(ids[ids.length - 1]).toBe(299);
    const [encoded, decoded] = await Promise.all([
      tensorlm('tokenizer', 'encode', '--tokenizer', out, text),
      tensorlm('tokenizer', 'decode', '--tokenizer', out, ...ids.map(String)),
    ]);
    expect(JSON.parse(encoded)).toEqual(ids);
    expect(decoded).toBe(`${text}\n`);
  }, 60_000);
});
