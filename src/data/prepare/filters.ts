/**
 * Document quality heuristics in the style of Gopher (Rae et al. 2021, "Scaling Language Models",
 * appendix A.1.1) and C4 (Raffel et al. 2020, section 2.2). Every rule has a name (used by
 * `--skip-rules`, rules.json and the report), can be switched off, and takes its thresholds from
 * DEFAULT_QUALITY_RULES unless overridden. docs/data.md explains each threshold.
 *
 * Line rules (C4) run first and may drop lines or the whole document; the document rules (Gopher)
 * then judge what is left.
 */
import { readJsonFile } from '../files.js';

export interface RangeRule {
  enabled: boolean;
  min: number;
  max: number;
}
export interface MaxRule {
  enabled: boolean;
  max: number;
}
export interface MinRule {
  enabled: boolean;
  min: number;
}
export interface SwitchRule {
  enabled: boolean;
}
export interface StopWordRule {
  enabled: boolean;
  /** How many distinct words of `words` a document must contain. */
  min: number;
  words: string[];
}

/** Every rule's settings, by the rule's name. */
export interface QualityRules {
  /** C4: a line containing "lorem ipsum" drops the whole document (placeholder text). */
  'lorem-ipsum': SwitchRule;
  /** C4: lines containing "javascript" are removed ("please enable JavaScript" boilerplate). */
  'javascript-lines': SwitchRule;
  /** C4: lines not ending in terminal punctuation are removed. Off by default: it deletes verse and speaker names. */
  'terminal-punctuation': SwitchRule;
  /** Gopher: number of whitespace-separated words in [min, max]. */
  'word-count': RangeRule;
  /** Gopher: mean word length in characters in [min, max]. */
  'mean-word-length': RangeRule;
  /** Gopher: '#' per word and ellipses per word, each at most max. */
  'symbol-ratio': MaxRule;
  /** Gopher: fraction of non-blank lines starting with a bullet at most max. */
  'bullet-lines': MaxRule;
  /** Gopher: fraction of non-blank lines ending with an ellipsis at most max. */
  'ellipsis-lines': MaxRule;
  /** Gopher: fraction of words containing an alphabetic character at least min. */
  'alpha-words': MinRule;
  /** Gopher: at least min distinct stop words from the list. */
  'stop-words': StopWordRule;
  /** Gopher: fraction of non-blank lines that repeat an earlier line at most max. */
  'duplicate-lines': MaxRule;
  /** Gopher: fraction of characters in lines that repeat an earlier line at most max. */
  'duplicate-line-chars': MaxRule;
}

export type QualityRuleName = keyof QualityRules;

/** The defaults: the thresholds of the Gopher and C4 papers (docs/data.md says why each). */
export const DEFAULT_QUALITY_RULES: Readonly<QualityRules> = Object.freeze({
  'lorem-ipsum': { enabled: true },
  'javascript-lines': { enabled: true },
  'terminal-punctuation': { enabled: false },
  'word-count': { enabled: true, min: 50, max: 100_000 },
  'mean-word-length': { enabled: true, min: 3, max: 10 },
  'symbol-ratio': { enabled: true, max: 0.1 },
  'bullet-lines': { enabled: true, max: 0.9 },
  'ellipsis-lines': { enabled: true, max: 0.3 },
  'alpha-words': { enabled: true, min: 0.8 },
  'stop-words': { enabled: true, min: 2, words: ['the', 'be', 'to', 'of', 'and', 'that', 'have', 'with'] },
  'duplicate-lines': { enabled: true, max: 0.3 },
  'duplicate-line-chars': { enabled: true, max: 0.2 },
});

/** The rule names in the order they run (line rules first). */
export const QUALITY_RULE_NAMES: readonly QualityRuleName[] = Object.freeze(Object.keys(DEFAULT_QUALITY_RULES) as QualityRuleName[]);

/** The rules that remove lines rather than whole documents. */
export const LINE_RULE_NAMES: readonly QualityRuleName[] = Object.freeze(['javascript-lines', 'terminal-punctuation'] as QualityRuleName[]);

/** A deep copy of the defaults, safe to modify. */
export function defaultQualityRules(): QualityRules {
  return structuredClone(DEFAULT_QUALITY_RULES) as QualityRules;
}

function isQualityRuleName(name: string): name is QualityRuleName {
  return Object.prototype.hasOwnProperty.call(DEFAULT_QUALITY_RULES, name);
}

/** Checks names given by the user ("--skip-rules a,b"); the error lists the known names. */
export function checkRuleNames(names: readonly string[], what: string): QualityRuleName[] {
  return names.map((name) => {
    if (!isQualityRuleName(name)) throw new Error(`${what}: unknown rule '${name}' (known: ${QUALITY_RULE_NAMES.join(', ')})`);
    return name;
  });
}

/** Returns `rules` with the named rules switched on or off. */
export function setRulesEnabled(rules: QualityRules, names: readonly QualityRuleName[], enabled: boolean): QualityRules {
  const out = structuredClone(rules);
  for (const name of names) out[name].enabled = enabled;
  return out;
}

/**
 * Applies overrides (parsed JSON: `{ "word-count": { "min": 20 }, "terminal-punctuation": { "enabled": true } }`)
 * to `base`. Every key must be a known rule and a known setting of it, with the setting's type; the
 * one-line error names `source` and the key.
 */
export function applyRuleOverrides(base: QualityRules, overrides: unknown, source: string): QualityRules {
  if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
    throw new Error(`${source}: expected a JSON object of rules, e.g. {"word-count": {"min": 20}}`);
  }
  const out = structuredClone(base);
  for (const [name, settings] of Object.entries(overrides as Record<string, unknown>)) {
    if (!isQualityRuleName(name)) throw new Error(`${source}: unknown rule '${name}' (known: ${QUALITY_RULE_NAMES.join(', ')})`);
    if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
      throw new Error(`${source}: '${name}' must be an object of settings (${Object.keys(out[name]).join(', ')})`);
    }
    const target = out[name] as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(settings as Record<string, unknown>)) {
      const where = `${source}: '${name}.${key}'`;
      if (!Object.prototype.hasOwnProperty.call(target, key)) throw new Error(`${where} is not a setting of ${name} (settings: ${Object.keys(target).join(', ')})`);
      const current = target[key];
      if (typeof current === 'boolean') {
        if (typeof value !== 'boolean') throw new Error(`${where} must be true or false, got ${JSON.stringify(value)}`);
      } else if (typeof current === 'number') {
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`${where} must be a non-negative number, got ${JSON.stringify(value)}`);
      } else if (Array.isArray(current)) {
        if (!Array.isArray(value) || value.some((w) => typeof w !== 'string' || w.length === 0)) throw new Error(`${where} must be an array of non-empty strings`);
      }
      target[key] = Array.isArray(value) ? value.map((w) => String(w).toLowerCase()) : value;
    }
    const rule = out[name] as Partial<RangeRule>;
    if (rule.min !== undefined && rule.max !== undefined && rule.min > rule.max) {
      throw new Error(`${source}: '${name}.min' (${rule.min}) is greater than '${name}.max' (${rule.max})`);
    }
  }
  return out;
}

/** Reads a rules.json file over the defaults. */
export function loadQualityRules(path: string, base: QualityRules = defaultQualityRules()): QualityRules {
  return applyRuleOverrides(base, readJsonFile(path, 'rules file'), path);
}

/** What the rules made of one document. */
export interface QualityVerdict {
  /** The first rule that rejected the whole document, or null when it is kept. */
  rejectedBy: QualityRuleName | null;
  /** The text after line removals (unchanged when no line rule fired). */
  text: string;
  /** Lines and UTF-8 bytes (newline included) each line rule removed, only for rules that removed some. */
  linesRemoved: Partial<Record<QualityRuleName, { lines: number; bytes: number }>>;
}

// Gopher's bullets; '-' and '*' are the Markdown ones, the rest typographic.
const BULLET_START = /^\s*[•●◦▪▫‣⁃∙·○■□➢➤►▶\-*]/u;
const ELLIPSIS_END = /(?:\.\.\.|…)$/;
// C4: "a terminal punctuation mark (i.e. a period, exclamation mark, question mark, or end quotation mark)".
const TERMINAL_PUNCTUATION_END = /[.!?"'”’»]$/u;
const HAS_LETTER = /\p{L}/u;

function countMatches(text: string, pattern: RegExp): number {
  let n = 0;
  for (const _ of text.matchAll(pattern)) n++;
  return n;
}

/** Removes the lines `drop` selects; returns the new text and what went. */
function dropLines(text: string, drop: (line: string) => boolean): { text: string; lines: number; bytes: number } {
  const kept: string[] = [];
  let lines = 0;
  let bytes = 0;
  for (const line of text.split('\n')) {
    if (line.trim().length > 0 && drop(line)) {
      lines++;
      bytes += Buffer.byteLength(line, 'utf8') + 1;
    } else kept.push(line);
  }
  if (lines === 0) return { text, lines, bytes };
  // Removing lines can leave several blank lines in a row: collapse them as normalisation does.
  return { text: kept.join('\n').replace(/\n{3,}/g, '\n\n').replace(/^(?:[^\S\n]*\n)+/, '').trimEnd(), lines, bytes };
}

/** Runs the enabled rules over a normalised document. */
export function applyQualityRules(input: string, rules: QualityRules = DEFAULT_QUALITY_RULES): QualityVerdict {
  let text = input;
  const linesRemoved: QualityVerdict['linesRemoved'] = {};
  const reject = (rule: QualityRuleName): QualityVerdict => ({ rejectedBy: rule, text, linesRemoved });

  // --- C4 line rules ---
  if (rules['lorem-ipsum'].enabled && /lorem ipsum/i.test(text)) return reject('lorem-ipsum');
  if (rules['javascript-lines'].enabled) {
    const r = dropLines(text, (line) => /javascript/i.test(line));
    if (r.lines > 0) linesRemoved['javascript-lines'] = { lines: r.lines, bytes: r.bytes };
    text = r.text;
  }
  if (rules['terminal-punctuation'].enabled) {
    const r = dropLines(text, (line) => !TERMINAL_PUNCTUATION_END.test(line.trimEnd()));
    if (r.lines > 0) linesRemoved['terminal-punctuation'] = { lines: r.lines, bytes: r.bytes };
    text = r.text;
  }
  if (text.length === 0) {
    // Emptied by line rules: counted at the line rule that removed the most.
    const culprit = (Object.entries(linesRemoved) as [QualityRuleName, { bytes: number }][]).sort((a, b) => b[1].bytes - a[1].bytes)[0];
    return reject(culprit ? culprit[0] : 'word-count');
  }

  // --- Gopher document rules ---
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  const wordCount = words.length;
  const lines = text.split('\n').filter((line) => line.trim().length > 0);

  const wc = rules['word-count'];
  if (wc.enabled && (wordCount < wc.min || wordCount > wc.max)) return reject('word-count');

  const mwl = rules['mean-word-length'];
  if (mwl.enabled) {
    let chars = 0;
    for (const w of words) chars += w.length;
    const mean = wordCount === 0 ? 0 : chars / wordCount;
    if (mean < mwl.min || mean > mwl.max) return reject('mean-word-length');
  }

  const sr = rules['symbol-ratio'];
  if (sr.enabled) {
    const hashes = countMatches(text, /#/g);
    const ellipses = countMatches(text, /\.\.\.|…/g);
    const denominator = Math.max(wordCount, 1);
    if (hashes / denominator > sr.max || ellipses / denominator > sr.max) return reject('symbol-ratio');
  }

  const lineCount = Math.max(lines.length, 1);
  const bl = rules['bullet-lines'];
  if (bl.enabled && lines.filter((line) => BULLET_START.test(line)).length / lineCount > bl.max) return reject('bullet-lines');

  const el = rules['ellipsis-lines'];
  if (el.enabled && lines.filter((line) => ELLIPSIS_END.test(line.trimEnd())).length / lineCount > el.max) return reject('ellipsis-lines');

  const aw = rules['alpha-words'];
  if (aw.enabled && wordCount > 0 && words.filter((w) => HAS_LETTER.test(w)).length / wordCount < aw.min) return reject('alpha-words');

  const sw = rules['stop-words'];
  if (sw.enabled) {
    const wanted = new Set(sw.words);
    const found = new Set<string>();
    for (const w of words) {
      // Words are compared without surrounding punctuation ("the," is "the").
      const bare = w.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
      if (wanted.has(bare)) found.add(bare);
      if (found.size >= sw.min) break;
    }
    if (found.size < sw.min) return reject('stop-words');
  }

  const dl = rules['duplicate-lines'];
  const dc = rules['duplicate-line-chars'];
  if (dl.enabled || dc.enabled) {
    const seen = new Set<string>();
    let duplicateLines = 0;
    let duplicateChars = 0;
    let totalChars = 0;
    for (const line of lines) {
      const key = line.trim();
      totalChars += key.length;
      if (seen.has(key)) {
        duplicateLines++;
        duplicateChars += key.length;
      } else seen.add(key);
    }
    if (dl.enabled && duplicateLines / lineCount > dl.max) return reject('duplicate-lines');
    if (dc.enabled && totalChars > 0 && duplicateChars / totalChars > dc.max) return reject('duplicate-line-chars');
  }

  return { rejectedBy: null, text, linesRemoved };
}
