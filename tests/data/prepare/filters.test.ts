/** Each quality rule on hand-made documents: one that passes, one that fails for exactly that rule. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyQualityRules,
  applyRuleOverrides,
  checkRuleNames,
  DEFAULT_QUALITY_RULES,
  defaultQualityRules,
  loadQualityRules,
  setRulesEnabled,
  type QualityRuleName,
} from '../../../src/data/prepare/filters.js';

// Ten lines of plain prose, ~90 words: passes every default rule.
const GOOD_LINES = [
  'The river runs past the old mill and into the town.',
  'Every morning the baker opens his shop before the sun is up.',
  'Children walk to school along the path that follows the water.',
  'In the afternoon the market fills with traders from the hills.',
  'They sell wool, cheese and honey to anyone with coins to spend.',
  'The mayor has promised a new bridge for the eastern quarter.',
  'Some people doubt that the money will ever be found for it.',
  'Still, the town has grown steadily for more than a hundred years.',
  'Visitors often remark on the quiet streets and the friendly faces.',
  'Most of them come back in summer to walk along the river again.',
];
const GOOD = GOOD_LINES.join('\n');

/** Asserts that `text` is rejected by `rule` and passes once that rule alone is off. */
function failsOnly(text: string, rule: QualityRuleName, rules = defaultQualityRules()): void {
  expect(applyQualityRules(text, rules).rejectedBy).toBe(rule);
  expect(applyQualityRules(text, setRulesEnabled(rules, [rule], false)).rejectedBy).toBeNull();
}

describe('quality rules', () => {
  it('keeps ordinary prose unchanged', () => {
    expect(applyQualityRules(GOOD)).toEqual({ rejectedBy: null, text: GOOD, linesRemoved: {} });
  });

  it('word-count: too few words, or more than max', () => {
    failsOnly(GOOD_LINES.slice(0, 3).join('\n'), 'word-count');
    failsOnly(GOOD, 'word-count', applyRuleOverrides(defaultQualityRules(), { 'word-count': { max: 50 } }, 'test'));
  });

  it('mean-word-length: words too long on average', () => {
    const long = GOOD_LINES.map((line) => line.replace(/\b(\w{4,})\b/g, '$1$1$1')).join('\n');
    failsOnly(long, 'mean-word-length');
  });

  it('symbol-ratio: hash tags', () => {
    failsOnly(`${GOOD}\n#river #town #market #bridge #summer #baker #honey #wool #cheese #mill #hills #coins #mayor #money #years #streets #faces #school #water #sun`, 'symbol-ratio');
  });

  it('bullet-lines: nearly every line a bullet', () => {
    failsOnly(GOOD_LINES.map((line) => `- ${line}`).join('\n'), 'bullet-lines');
    expect(applyQualityRules(GOOD_LINES.map((line, i) => (i < 5 ? `• ${line}` : line)).join('\n')).rejectedBy).toBeNull();
  });

  it('ellipsis-lines: too many lines trailing off', () => {
    failsOnly(GOOD_LINES.map((line, i) => (i < 4 ? line.replace(/\.$/, '...') : line)).join('\n'), 'ellipsis-lines');
  });

  it('alpha-words: too many words without a letter', () => {
    failsOnly(`${GOOD}\n${Array.from({ length: 30 }, (_, i) => String(1000 + i * 7)).join(' ')}.`, 'alpha-words');
  });

  it('stop-words: fewer than two of the, be, to, of, and, that, have, with', () => {
    const noStopWords = GOOD_LINES.map((line) => line.replace(/\b(the|be|to|of|and|that|have|with)\b/gi, 'a')).join('\n');
    failsOnly(noStopWords, 'stop-words');
  });

  it('duplicate-lines: many repeated short lines', () => {
    failsOnly([...GOOD_LINES, 'Yes.', 'Yes.', 'Yes.', 'Yes.', 'Yes.', 'Yes.'].join('\n'), 'duplicate-lines');
  });

  it('duplicate-line-chars: a long line repeated', () => {
    const long = 'This long sentence about the weather and the harvest and the price of grain is repeated twice more below.';
    failsOnly([long, ...GOOD_LINES.slice(0, 6), long, long].join('\n'), 'duplicate-line-chars');
  });

  it('lorem-ipsum: drops the whole document', () => {
    failsOnly(`${GOOD}\nLorem ipsum dolor sit amet.`, 'lorem-ipsum');
  });

  it('javascript-lines: removes the lines, keeps the document, counts the bytes', () => {
    const line = 'Please enable JavaScript to view the comments.';
    const verdict = applyQualityRules(`${GOOD}\n${line}`);
    expect(verdict).toEqual({ rejectedBy: null, text: GOOD, linesRemoved: { 'javascript-lines': { lines: 1, bytes: line.length + 1 } } });
  });

  it('terminal-punctuation: off by default (verse and speaker names survive); when on, removes unpunctuated lines', () => {
    const play = ['ROMEO:', 'But soft, what light through yonder window breaks?', 'It is the east, and Juliet is the sun', ...GOOD_LINES].join('\n');
    expect(DEFAULT_QUALITY_RULES['terminal-punctuation'].enabled).toBe(false);
    expect(applyQualityRules(play).text).toBe(play);
    const on = setRulesEnabled(defaultQualityRules(), ['terminal-punctuation'], true);
    const verdict = applyQualityRules(play, on);
    expect(verdict.rejectedBy).toBeNull();
    expect(verdict.text.startsWith('But soft')).toBe(true);
    expect(verdict.linesRemoved['terminal-punctuation']?.lines).toBe(2);
    // A document left empty is counted at the line rule that emptied it.
    expect(applyQualityRules('ROMEO:\nJULIET:\nNurse', on).rejectedBy).toBe('terminal-punctuation');
  });

  it('settings from JSON: validated, with errors naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorlm-rules-'));
    const file = join(dir, 'rules.json');
    writeFileSync(file, JSON.stringify({ 'word-count': { min: 5 }, 'terminal-punctuation': { enabled: true }, 'stop-words': { words: ['The', 'a'] } }));
    const rules = loadQualityRules(file);
    expect(rules['word-count']).toEqual({ enabled: true, min: 5, max: 100_000 });
    expect(rules['terminal-punctuation'].enabled).toBe(true);
    expect(rules['stop-words'].words).toEqual(['the', 'a']);
    expect(DEFAULT_QUALITY_RULES['word-count'].min).toBe(50);
    expect(() => applyRuleOverrides(defaultQualityRules(), { 'word-cnt': {} }, 'r.json')).toThrow(/^r\.json: unknown rule 'word-cnt' \(known: lorem-ipsum/);
    expect(() => applyRuleOverrides(defaultQualityRules(), { 'word-count': { minimum: 3 } }, 'r.json')).toThrow("r.json: 'word-count.minimum' is not a setting of word-count (settings: enabled, min, max)");
    expect(() => applyRuleOverrides(defaultQualityRules(), { 'word-count': { min: '3' } }, 'r.json')).toThrow("r.json: 'word-count.min' must be a non-negative number, got \"3\"");
    expect(() => applyRuleOverrides(defaultQualityRules(), { 'word-count': { min: 10, max: 5 } }, 'r.json')).toThrow(/greater than 'word-count.max'/);
    expect(() => applyRuleOverrides(defaultQualityRules(), [], 'r.json')).toThrow(/expected a JSON object/);
    writeFileSync(file, '{ broken');
    expect(() => loadQualityRules(file)).toThrow(/invalid JSON/);
    expect(() => checkRuleNames(['word-count', 'nope'], '--skip-rules')).toThrow(/^--skip-rules: unknown rule 'nope'/);
  });
});
