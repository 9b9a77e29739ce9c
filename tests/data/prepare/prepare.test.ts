/** prepare(): sources (files, directories, globs, JSONL), the report, and atomic output. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QUALITY_RULE_NAMES, defaultQualityRules, setRulesEnabled } from '../../../src/data/prepare/filters.js';
import { prepare } from '../../../src/data/prepare/prepare.js';
import { expandInputs, readDocuments } from '../../../src/data/prepare/sources.js';

const NO_RULES = setRulesEnabled(defaultQualityRules(), QUALITY_RULE_NAMES, false);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

function tree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tensorlm-prepare-'));
  mkdirSync(join(dir, 'in/sub'), { recursive: true });
  writeFileSync(join(dir, 'in/b.txt'), 'bee');
  writeFileSync(join(dir, 'in/a.md'), 'ay');
  writeFileSync(join(dir, 'in/sub/c.html'), '<p>see <b>this</b></p>');
  writeFileSync(join(dir, 'in/ignored.csv'), 'x,y');
  writeFileSync(join(dir, 'in/.hidden.txt'), 'hidden');
  writeFileSync(join(dir, 'in/d.jsonl'), '{"text": "first"}\n\n{"body": "x", "text": "second"}\n');
  return dir;
}

describe('sources', () => {
  it('expands directories recursively and globs, sorted, each file once', async () => {
    const dir = tree();
    const files = await expandInputs([join(dir, 'in'), join(dir, 'in/*.txt')]);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['in/a.md', 'in/b.txt', 'in/d.jsonl', 'in/sub/c.html']);
    const docs = await collect(readDocuments(files));
    expect(docs.map((d) => [d.text, d.source.slice(dir.length + 1), d.html])).toEqual([
      ['ay', 'in/a.md', false],
      ['bee', 'in/b.txt', false],
      ['first', 'in/d.jsonl:1', false],
      ['second', 'in/d.jsonl:3', false],
      ['<p>see <b>this</b></p>', 'in/sub/c.html', true],
    ]);
  });

  it('one-line errors for bad inputs and bad JSONL lines, naming file and line', async () => {
    const dir = tree();
    await expect(expandInputs([join(dir, 'missing.txt')])).rejects.toThrow(`input ${join(dir, 'missing.txt')} does not exist (expected a file, a directory or a glob)`);
    await expect(expandInputs([join(dir, 'in/ignored.csv')])).rejects.toThrow(/unsupported file type '\.csv'/);
    await expect(expandInputs([join(dir, 'in/*.xml')])).rejects.toThrow(/matched no/);
    const jsonl = join(dir, 'bad.jsonl');
    writeFileSync(jsonl, '{"text": "ok"}\n{"content": "x"}\n');
    await expect(collect(readDocuments([jsonl]))).rejects.toThrow(`${jsonl}:2: expected a string field 'text' (missing; see --text-field)`);
    await expect(collect(readDocuments([jsonl], { textField: 'content' }))).rejects.toThrow(`${jsonl}:1: expected a string field 'content'`);
    writeFileSync(jsonl, '{"text": "ok"}\nnot json\n');
    await expect(collect(readDocuments([jsonl]))).rejects.toThrow(`${jsonl}:2: not valid JSON`);
    writeFileSync(jsonl, '["text"]\n');
    await expect(collect(readDocuments([jsonl]))).rejects.toThrow(`${jsonl}:1: expected a JSON object`);
  });
});

describe('prepare', () => {
  it('writes the kept documents as JSONL and reports every stage', async () => {
    const dir = tree();
    const output = join(dir, 'documents.jsonl');
    writeFileSync(join(dir, 'in/e.txt'), 'BEE  \r\n');
    const report = await prepare({ inputs: [join(dir, 'in')], output, rules: NO_RULES, dedup: 'exact' });
    const lines = readFileSync(output, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { text: string; source: string });
    expect(lines.map((l) => l.text)).toEqual(['ay', 'bee', 'first', 'second', 'see this']);
    expect(report.input.documents).toBe(6);
    expect(report.kept.documents).toBe(5);
    expect(report.removed['exact-duplicate']).toEqual({ documents: 1, bytes: 7 });
    expect(report.files).toBe(5);
    expect(report.seconds).toBeGreaterThanOrEqual(0);
  });

  it('is atomic: a failure mid-way leaves no output and no temporary file, and an earlier output untouched', async () => {
    const dir = tree();
    const out = join(dir, 'out');
    mkdirSync(out);
    const output = join(out, 'documents.jsonl');
    writeFileSync(join(dir, 'in/z.jsonl'), '{"text": "fine"}\n{"text": 3}\n');
    await expect(prepare({ inputs: [join(dir, 'in')], output, rules: NO_RULES })).rejects.toThrow(/z\.jsonl:2: expected a string field 'text', got number/);
    expect(readdirSync(out)).toEqual([]);
    writeFileSync(output, 'old\n');
    await expect(prepare({ inputs: [join(dir, 'in')], output, rules: NO_RULES })).rejects.toThrow(/z\.jsonl:2/);
    expect(readdirSync(out)).toEqual(['documents.jsonl']);
    expect(readFileSync(output, 'utf8')).toBe('old\n');
    expect(existsSync(output)).toBe(true);
  });
});
