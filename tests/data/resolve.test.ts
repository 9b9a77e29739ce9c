import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DATASETS,
  defaultDataDir,
  loadText,
  readTextFile,
  resolveDataset,
  writeFileAtomic,
  type DownloadResponse,
  type FetchFunction,
} from '../../src/data/index.js';
import { HAVE_SHAKESPEARE, makeTempDir, NO_SHAKESPEARE_REASON, REPO_ROOT, SHAKESPEARE_PATH } from '../tokenizers/helpers.js';

const tmp = makeTempDir();
afterAll(tmp.cleanup);
const freshDir = tmp.fresh;

async function* chunks(parts: readonly Uint8Array[], failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < parts.length; i++) {
    if (failAfter !== undefined && i === failAfter) throw new Error('connection reset by peer');
    yield parts[i];
  }
}

function respond(body: AsyncIterable<Uint8Array> | null, status = 200): DownloadResponse {
  return { ok: status >= 200 && status < 300, status, statusText: status === 404 ? 'Not Found' : 'OK', body };
}

/** Fails the test if anything tries the network. */
const noNetwork: FetchFunction = () => {
  throw new Error('test tried to download');
};

describe('local paths', () => {
  it('resolves a file by path, relative to cwd', async () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'a.txt'), 'hello\n');
    const r = await resolveDataset('a.txt', { cwd: dir, fetch: noNetwork });
    expect(r).toEqual({ name: 'a.txt', files: [join(dir, 'a.txt')], source: 'path' });
    expect(await loadText(join(dir, 'a.txt'))).toBe('hello\n');
  });

  it('concatenates a directory of .txt files in sorted order, recursively, skipping hidden and other files', async () => {
    const dir = freshDir();
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'b', 'inner.txt'), 'third\n');
    writeFileSync(join(dir, 'a.txt'), 'first'); // no final newline: one is added between files
    writeFileSync(join(dir, 'a2.txt'), 'second\n');
    writeFileSync(join(dir, '.hidden.txt'), 'never');
    writeFileSync(join(dir, 'notes.md'), 'never');
    const r = await resolveDataset(dir, { fetch: noNetwork });
    expect(r.source).toBe('directory');
    expect(r.files).toEqual([join(dir, 'a.txt'), join(dir, 'a2.txt'), join(dir, 'b', 'inner.txt')]);
    expect(await loadText(dir)).toBe('first\nsecond\nthird\n');
  });

  it('explains a path that does not exist', async () => {
    const dir = freshDir();
    await expect(resolveDataset('nope.txt', { cwd: dir, fetch: noNetwork })).rejects.toThrow(
      /no file or directory at .*nope\.txt, and "nope\.txt" is not a known dataset name \(known: tinyshakespeare\)/,
    );
    await expect(resolveDataset(freshDir(), { fetch: noNetwork })).rejects.toThrow(/has no \.txt files/);
  });

  it('rejects files that are not UTF-8 text, naming the file and the offset', async () => {
    const dir = freshDir();
    const path = join(dir, 'binary.txt');
    writeFileSync(path, Buffer.from([0x68, 0x69, 0xc3, 0x28, 0x00]));
    await expect(loadText(path)).rejects.toThrow(/cannot read data file .*binary\.txt: it is not valid UTF-8 text \(first bad byte at offset 2\)/);
  });

  it('names the file and the reason when it cannot be read', () => {
    const dir = freshDir();
    expect(() => readTextFile(join(dir, 'missing.txt'))).toThrow(/cannot read file .*missing\.txt: no such file/);
    expect(() => readTextFile(dir)).toThrow(/cannot read file .*: it is a directory/);
  });

  // Root reads files whatever their mode, so the permission case only means something otherwise.
  it.skipIf(process.getuid?.() === 0)('reports permission denied (skipped when running as root, which ignores file modes)', () => {
    const path = join(freshDir(), 'secret.txt');
    writeFileSync(path, 'x');
    chmodSync(path, 0o000);
    expect(() => readTextFile(path)).toThrow(/secret\.txt: permission denied/);
  });
});

describe('named datasets', () => {
  const info = DATASETS.tinyshakespeare;
  const original = process.env.TENSORLM_DATA_DIR;
  beforeEach(() => {
    delete process.env.TENSORLM_DATA_DIR;
  });
  afterEach(() => {
    if (original === undefined) delete process.env.TENSORLM_DATA_DIR;
    else process.env.TENSORLM_DATA_DIR = original;
  });

  it('takes the data directory from TENSORLM_DATA_DIR, else ~/.cache/tensorlm', () => {
    process.env.TENSORLM_DATA_DIR = '/some/where';
    expect(defaultDataDir()).toBe('/some/where');
    delete process.env.TENSORLM_DATA_DIR;
    expect(defaultDataDir()).toMatch(/\.cache[/\\]tensorlm$/);
    process.env.TENSORLM_DATA_DIR = ''; // empty counts as unset
    expect(defaultDataDir()).toMatch(/\.cache[/\\]tensorlm$/);
  });

  it('refuses a wrong download: the error names both hashes and nothing is left in the cache', async () => {
    const dataDir = freshDir();
    const wrong = new TextEncoder().encode('this is not shakespeare');
    const fetchWrong: FetchFunction = async () => respond(chunks([wrong]));
    const error = await resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: fetchWrong }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(`expected SHA-256 ${info.sha256} (1115394 bytes)`);
    expect(message).toMatch(/got [0-9a-f]{64} \(23 bytes\)/);
    expect(message).toContain('nothing was saved');
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('leaves no partial file when the connection drops midway, and says how to provide the file', async () => {
    const dataDir = freshDir();
    const part = new Uint8Array(64 * 1024).fill(65);
    const fetchDrops: FetchFunction = async () => respond(chunks([part, part, part], 2));
    const error = (await resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: fetchDrops }).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/could not download tinyshakespeare from https:\/\/raw\.githubusercontent\.com\/.*: connection reset by peer/);
    expect(error.message).toContain('TENSORLM_DATA_DIR');
    expect(error.message).toContain('--data <path>');
    expect(error.message).toContain(join(dataDir, 'tinyshakespeare.txt'));
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('explains offline failures and HTTP errors', async () => {
    const dataDir = freshDir();
    const offline: FetchFunction = async () => {
      throw new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND raw.githubusercontent.com') });
    };
    await expect(resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: offline })).rejects.toThrow(
      /fetch failed \(getaddrinfo ENOTFOUND raw\.githubusercontent\.com\)\. To provide it by hand, download .* TENSORLM_DATA_DIR/,
    );
    const notFound: FetchFunction = async () => respond(null, 404);
    await expect(resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: notFound })).rejects.toThrow(/HTTP 404 Not Found/);
    await expect(resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, download: false })).rejects.toThrow(
      /not in .* and downloading is turned off\. To provide it by hand/,
    );
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it('looks only in the data directory: a shared/data copy beside the working directory or its parents is not used', async () => {
    // The library once also searched shared/data in every parent directory (this repository's CI
    // layout). A corrupt copy there would be reported if it were still searched; instead the
    // dataset is simply missing from the (empty) data directory.
    const root = freshDir();
    const cwd = join(root, 'repo', 'sub');
    mkdirSync(cwd, { recursive: true });
    for (const dir of [join(root, 'shared', 'data'), join(root, 'repo', 'shared', 'data'), join(cwd, 'shared', 'data')]) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'tinyshakespeare.txt'), 'not the dataset');
    }
    const dataDir = freshDir();
    await expect(resolveDataset('tinyshakespeare', { dataDir, cwd, download: false })).rejects.toThrow(
      `tinyshakespeare is not in ${dataDir} and downloading is turned off`,
    );
  });

  it('reports a corrupt cached copy instead of using it', async () => {
    const dataDir = freshDir();
    writeFileSync(join(dataDir, 'tinyshakespeare.txt'), 'truncated');
    await expect(resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: noNetwork })).rejects.toThrow(
      /checksum mismatch for tinyshakespeare \(cached file .*tinyshakespeare\.txt; delete it to download again\): expected SHA-256 86c4e6aa.* got [0-9a-f]{64} \(9 bytes\)/,
    );
  });

  describe.skipIf(!HAVE_SHAKESPEARE)(`with the real file (${HAVE_SHAKESPEARE ? 'present' : NO_SHAKESPEARE_REASON})`, () => {
    it('uses and verifies a copy in the directory TENSORLM_DATA_DIR names (how CI points at its shared copy)', async () => {
      process.env.TENSORLM_DATA_DIR = dirname(SHAKESPEARE_PATH);
      const r = await resolveDataset('tinyshakespeare', { cwd: REPO_ROOT, fetch: noNetwork });
      expect(r).toEqual({ name: 'tinyshakespeare', files: [SHAKESPEARE_PATH], source: 'data-dir' });
      expect(statSync(r.files[0]).size).toBe(info.bytes);
    });

    it('downloads through a temporary file, verifies, and then serves the cached copy', async () => {
      const dataDir = freshDir();
      const bytes = readFileSync(SHAKESPEARE_PATH);
      const parts = [bytes.subarray(0, 500_000), bytes.subarray(500_000)];
      let calls = 0;
      const fetchGood: FetchFunction = async () => {
        calls++;
        return respond(chunks(parts));
      };
      const messages: string[] = [];
      // An empty data directory: it has to download.
      const first = await resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: fetchGood, log: (m) => messages.push(m) });
      expect(first).toEqual({ name: 'tinyshakespeare', files: [join(dataDir, 'tinyshakespeare.txt')], source: 'download' });
      expect(messages[0]).toMatch(/^downloading tinyshakespeare from https:/);
      expect(readdirSync(dataDir)).toEqual(['tinyshakespeare.txt']);
      const second = await resolveDataset('tinyshakespeare', { dataDir, cwd: dataDir, fetch: fetchGood });
      expect(second.source).toBe('data-dir');
      expect(calls).toBe(1);
      // TENSORLM_DATA_DIR is used when no dataDir is passed.
      process.env.TENSORLM_DATA_DIR = dataDir;
      expect((await resolveDataset('tinyshakespeare', { cwd: dataDir, fetch: noNetwork })).source).toBe('data-dir');
    });
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file in one step and leaves no temporary file', () => {
    const dir = freshDir();
    const path = join(dir, 'out.bin');
    writeFileAtomic(path, 'first');
    writeFileAtomic(path, [Uint8Array.of(1, 2), Uint8Array.of(3)]);
    expect(Array.from(readFileSync(path))).toEqual([1, 2, 3]);
    expect(readdirSync(dir)).toEqual(['out.bin']);
  });

  it('removes the temporary file when the final rename fails', () => {
    const dir = freshDir();
    const target = join(dir, 'occupied');
    mkdirSync(target); // renaming a file onto a directory fails
    expect(() => writeFileAtomic(target, 'data')).toThrow();
    expect(readdirSync(dir)).toEqual(['occupied']);
    expect(existsSync(join(target))).toBe(true);
  });
});
