/** `tensorlm data prepare` end to end: .txt, .html and .jsonl inputs with duplicates; argument errors. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as cli } from '../helpers/cli.js';

const PARAGRAPH = [
  'The history of the valley is long and full of change.',
  'Merchants came up the river and built their houses of stone near the ford.',
  'The town grew around the market that they held each week in the square.',
  'Farmers brought grain, wool and cheese, and left with tools and cloth.',
  'In winter the roads closed and the people lived on what they had stored.',
  'Each spring the river flooded the lower fields and the work began again.',
];

describe('tensorlm data prepare', () => {
  it('cleans, deduplicates and reports', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-data-'));
    const input = join(dir, 'in');
    mkdirSync(input);
    const doc = PARAGRAPH.join('\n');
    writeFileSync(join(input, 'a.txt'), doc);
    // An exact duplicate up to case and whitespace.
    writeFileSync(join(input, 'b.txt'), doc.toUpperCase().replace(/ /g, '  '));
    // The same text as HTML, one word changed: a near duplicate.
    writeFileSync(join(input, 'c.html'), `<html><body><h1>Valley</h1>${PARAGRAPH.map((s, i) => `<p>${i === 3 ? s.replace('cheese', 'butter') : s}</p>`).join('')}<script>track()</script></body></html>`);
    const other = 'A different story begins with a ship that sailed to the north, where the sea was cold and the nights were long. The crew had little to eat and less to say, and they counted the days until the ice would break and let them go home with their catch of fish and furs.';
    writeFileSync(join(input, 'd.jsonl'), [JSON.stringify({ text: other, id: 1 }), JSON.stringify({ text: 'too short to keep', id: 2 }), JSON.stringify({ text: `${other}\nLorem ipsum dolor sit amet.`, id: 3 })].join('\n') + '\n');
    const out = join(dir, 'out');
    const exactOut = join(dir, 'out-exact');
    // --dedup exact keeps the near duplicate; --skip-rules keeps the short one. Both runs at once:
    // most of a run's time is the CLI's start-up.
    const [r, exact] = await Promise.all([
      cli(['data', 'prepare', input, '--out', out]),
      cli(['data', 'prepare', input, '--out', exactOut, '--dedup', 'exact', '--skip-rules', 'word-count,stop-words']),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/exact-duplicate\s*│ 1 /);
    expect(r.stdout).toMatch(/near-duplicate\s*│ 1 /);
    expect(r.stdout).toMatch(/kept\s*│ 2 /);
    const documents = readFileSync(join(out, 'documents.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { text: string; source: string });
    expect(documents.map((d) => d.source)).toEqual([join(input, 'a.txt'), `${join(input, 'd.jsonl')}:1`]);
    expect(documents[0].text).toBe(doc);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.input.documents).toBe(6);
    expect(report.kept.documents).toBe(2);
    expect(report.removed['word-count'].documents).toBe(1);
    expect(report.removed['lorem-ipsum'].documents).toBe(1);
    expect(report.removed['exact-duplicate'].documents).toBe(1);
    expect(report.removed['near-duplicate'].documents).toBe(1);
    expect(report.dedup).toMatchObject({ mode: 'near', jaccard: 0.8, numPerm: 128 });

    expect(exact.code, exact.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(exactOut, 'report.json'), 'utf8')).kept.documents).toBe(4);
  }, 60_000);

  it('bad arguments: one line, no stack trace, no output written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-data-'));
    const out = join(dir, 'out');
    const rules = join(dir, 'rules.json');
    writeFileSync(rules, '{"word-count": {"min": "ten"}}');
    writeFileSync(join(dir, 'a.txt'), 'text');
    const [missing, badRules] = await Promise.all([
      cli(['data', 'prepare', join(dir, 'nothing-here'), '--out', out]),
      cli(['data', 'prepare', join(dir, 'a.txt'), '--out', out, '--rules', rules]),
    ]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim()).toBe(`tensorlm: input ${join(dir, 'nothing-here')} does not exist (expected a file, a directory or a glob)`);
    expect(badRules.stderr.trim()).toBe(`tensorlm: ${rules}: 'word-count.min' must be a non-negative number, got "ten"`);
    expect(badRules.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(out, 'documents.jsonl'))).toBe(false);
  }, 60_000);
});
