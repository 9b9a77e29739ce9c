/**
 * Pre-tokenisation: the text is cut into pieces (words with their leading space, numbers, runs of
 * punctuation, runs of whitespace) and BPE merges never cross a piece boundary. Special tokens
 * are cut out before that, so they are never split and never merged with their neighbours.
 *
 * A pre-tokenizer is either a built-in one, named (`gpt2`), which runs on JavaScript's RegExp
 * engine because its pattern is fixed and known to be linear, or a user pattern, which runs on
 * RE2 (the `re2js` package: linear time, no backtracking, no lookaround), because a pattern read
 * from a file or an option is untrusted. Both guarantee the same two things: the pieces of a
 * text concatenate back to exactly that text (text no match covers becomes a piece of its own),
 * and splitting always advances (an empty match is skipped, never repeated).
 */
import { RE2JS } from 're2js';

/**
 * GPT-2's pattern. Python's `regex` module (which GPT-2 uses) reads `\s` as the Unicode
 * White_Space property, while JavaScript's `\s` also matches U+FEFF and misses U+0085, so the
 * property is spelled out to give the same pieces as GPT-2 on every input.
 */
export const GPT2_PATTERN =
  String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+`;

/**
 * cl100k_base's pattern (GPT-3.5/GPT-4), as tiktoken runs it, for JavaScript's RegExp (`u` flag):
 * - `(?i:'s|'t|'re|'ve|'m|'ll|'d)` has its case variants spelled out (Node 20's RegExp has no
 *   inline `(?i:…)`), including U+017F LATIN SMALL LETTER LONG S, which Unicode case folding
 *   makes equal to `s` (tiktoken's Rust regex folds it; JavaScript's `/i` would too);
 * - `\s` and `\S` are Unicode White_Space, as in Rust's regex (see GPT2_PATTERN);
 * - tiktoken's newer spelling with possessive quantifiers (`?+`, `++`) and `\s*[\r\n]` gives the
 *   same matches: what the possessive parts hold can never be given back usefully (the class
 *   after them is disjoint from theirs), and a greedy `\s*` ends at the run's last newline either way.
 */
export const CL100K_PATTERN =
  String.raw`'(?:[sS\u{17F}]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*|\p{White_Space}*[\r\n]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+`;

/**
 * The built-in pre-tokenizers by name, with the pattern each runs (on JavaScript's RegExp, `u`
 * flag). A file names one in its `pretokenizer` field; a file whose `pattern` is exactly one of
 * these strings (as files written before names existed are) gets that built-in.
 */
export const KNOWN_PRETOKENIZERS = {
  gpt2: GPT2_PATTERN,
  cl100k: CL100K_PATTERN,
} as const satisfies Record<string, string>;

export type PretokenizerName = keyof typeof KNOWN_PRETOKENIZERS;

/** A user pattern longer than this many characters is refused. */
export const MAX_PATTERN_LENGTH = 2000;
/** A user pattern whose RE2 program has more instructions than this is refused (matching costs up to this much per character). */
export const MAX_PATTERN_PROGRAM_SIZE = 2000;
/**
 * A user pattern is matched within this many UTF-16 code units of where the search starts, so no
 * piece is longer and one search never reads further: splitting a text of n characters costs at
 * most O(n · MAX_PATTERN_WINDOW), whatever the pattern (a search that finds a short match only
 * after reading to the end of the text would otherwise make the whole split quadratic). Text no
 * match covers is cut into pieces of at most this length too.
 */
export const MAX_PATTERN_WINDOW = 256;

/** How a tokenizer's pre-tokenizer is chosen: a built-in by name, or a pattern (a built-in's pattern string selects that built-in). */
export interface PretokenizerSpec {
  pretokenizer?: string;
  pattern?: string;
}

/**
 * Cuts text into pieces. Stateful (`start`, then `next` until null) and not re-entrant: BPE's
 * encode loop, which runs once per piece, stays a plain loop without a callback per piece.
 */
export interface Pretokenizer {
  /** The built-in's name, or null for a user pattern. */
  readonly name: PretokenizerName | null;
  /** The pattern it runs (for a built-in, the built-in's pattern). */
  readonly pattern: string;
  /** Starts splitting `text`. */
  start(text: string): void;
  /** The next piece (never empty), or null at the end. Pieces concatenate to the text exactly. */
  next(): string | null;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}…`;
}

/** The name of the built-in whose pattern is exactly `pattern`, or null. */
export function knownPretokenizerOf(pattern: string): PretokenizerName | null {
  for (const [name, known] of Object.entries(KNOWN_PRETOKENIZERS)) if (known === pattern) return name as PretokenizerName;
  return null;
}

function isKnownName(name: string): name is PretokenizerName {
  return Object.hasOwn(KNOWN_PRETOKENIZERS, name);
}

/**
 * The pre-tokenizer a spec asks for: `pretokenizer` names a built-in (if `pattern` is given too,
 * it must be that built-in's pattern); else `pattern` is a built-in's exact pattern string or a
 * user pattern in RE2 syntax; else GPT-2's. Errors are one line and say what was expected.
 */
export function resolvePretokenizer(spec: PretokenizerSpec = {}): Pretokenizer {
  const { pretokenizer, pattern } = spec;
  if (pretokenizer !== undefined) {
    if (typeof pretokenizer !== 'string' || !isKnownName(pretokenizer)) {
      throw new Error(`"pretokenizer": unknown pre-tokenizer ${truncate(JSON.stringify(pretokenizer) ?? String(pretokenizer), 60)}, expected one of ${Object.keys(KNOWN_PRETOKENIZERS).map((n) => `"${n}"`).join(', ')}`);
    }
    if (pattern !== undefined && pattern !== KNOWN_PRETOKENIZERS[pretokenizer]) {
      throw new Error(`"pattern" does not match "pretokenizer": "${pretokenizer}" (expected that pre-tokenizer's own pattern, or no "pattern")`);
    }
    return builtinPretokenizer(pretokenizer);
  }
  if (pattern === undefined) return builtinPretokenizer('gpt2');
  if (typeof pattern !== 'string') throw new Error(`"pattern": expected a string, got ${typeof pattern}`);
  const known = knownPretokenizerOf(pattern);
  return known !== null ? builtinPretokenizer(known) : userPretokenizer(pattern);
}

/** A built-in pre-tokenizer. */
export function builtinPretokenizer(name: PretokenizerName): Pretokenizer {
  return new RegExpPretokenizer(name, KNOWN_PRETOKENIZERS[name]);
}

/**
 * A user pattern on RE2 (RE2 syntax: `\p{L}`, `\p{White_Space}` and `(?i:…)` work; lookahead,
 * lookbehind and backreferences do not, and `\s`, `\d`, `\w` are ASCII-only).
 */
export function userPretokenizer(pattern: string): Pretokenizer {
  if (pattern.length > MAX_PATTERN_LENGTH) throw new Error(`"pattern": ${pattern.length} characters, expected at most ${MAX_PATTERN_LENGTH}`);
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const hint = /\(\?[=!<]/.test(pattern) ? '; for GPT-2\'s pattern use "pretokenizer": "gpt2"' : '';
    throw new Error(`"pattern" ${truncate(JSON.stringify(pattern), 40)} is not a valid RE2 pattern (RE2 runs in linear time: no lookaround, no backreferences${hint}): ${truncate(reason, 80)}`);
  }
  const size = re.programSize();
  if (size > MAX_PATTERN_PROGRAM_SIZE) throw new Error(`"pattern": compiles to ${size} RE2 instructions, expected at most ${MAX_PATTERN_PROGRAM_SIZE}`);
  return new RE2Pretokenizer(pattern, re);
}

/** Length in UTF-16 code units of the code point at `i` (2 for a surrogate pair, else 1). */
function codePointLength(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 2;
  }
  return 1;
}

/** `end`, moved back by one when it would cut a surrogate pair in two. */
function codePointBoundary(text: string, end: number): number {
  if (end <= 0 || end >= text.length) return end;
  const before = text.charCodeAt(end - 1);
  const after = text.charCodeAt(end);
  return before >= 0xd800 && before <= 0xdbff && after >= 0xdc00 && after <= 0xdfff ? end - 1 : end;
}

/**
 * A built-in pattern on JavaScript's RegExp. The built-ins match every character and never the
 * empty string, but the loop does not rely on it: text between matches becomes a piece, and
 * an empty match moves the search on by one code point.
 */
/**
 * What both pre-tokenizers keep between calls: the text, where the next piece starts, and a
 * match found after a gap of unmatched text (the gap is returned first, the match next call).
 */
abstract class PieceCursor {
  protected text = '';
  protected pos = 0;
  /** The end of a match found after a gap, returned on the next call; -1 when none. */
  protected pendingEnd = -1;

  start(text: string): void {
    this.text = text;
    this.pos = 0;
    this.pendingEnd = -1;
  }

  /** The pending match, or the end (null), or undefined when a search is due. */
  protected pendingPiece(): string | null | undefined {
    const start = this.pos;
    if (this.pendingEnd >= 0) {
      const end = this.pendingEnd;
      this.pendingEnd = -1;
      this.pos = end;
      return this.text.slice(start, end);
    }
    return start >= this.text.length ? null : undefined;
  }
}

class RegExpPretokenizer extends PieceCursor implements Pretokenizer {
  readonly pattern: string;
  private readonly regex: RegExp;

  constructor(
    readonly name: PretokenizerName,
    pattern: string,
  ) {
    super();
    this.pattern = pattern;
    this.regex = new RegExp(pattern, 'gu');
  }

  next(): string | null {
    const pending = this.pendingPiece();
    if (pending !== undefined) return pending;
    const text = this.text;
    const start = this.pos;
    const regex = this.regex;
    let search = start;
    for (;;) {
      regex.lastIndex = search;
      const m = regex.exec(text);
      if (m === null) {
        this.pos = text.length;
        return text.slice(start);
      }
      const end = m.index + m[0].length;
      if (end > m.index) {
        if (m.index === start) {
          this.pos = end;
          return m[0];
        }
        this.pos = m.index;
        this.pendingEnd = end;
        return text.slice(start, m.index);
      }
      // An empty match: the character there joins the unmatched text.
      search = m.index + codePointLength(text, m.index);
      if (search >= text.length) {
        this.pos = text.length;
        return text.slice(start);
      }
    }
  }
}

/** A user pattern on RE2, searched within a window of MAX_PATTERN_WINDOW code units. */
class RE2Pretokenizer extends PieceCursor implements Pretokenizer {
  readonly name = null;

  constructor(
    readonly pattern: string,
    private readonly re: RE2JS,
  ) {
    super();
  }

  next(): string | null {
    const pending = this.pendingPiece();
    if (pending !== undefined) return pending;
    const text = this.text;
    const start = this.pos;
    let search = start;
    for (;;) {
      // Unmatched text is cut into pieces of at most the window's length, too.
      const gapLimit = codePointBoundary(text, Math.min(text.length, start + MAX_PATTERN_WINDOW));
      if (search >= gapLimit) {
        const end = gapLimit > start ? gapLimit : start + codePointLength(text, start);
        this.pos = end;
        return text.slice(start, end);
      }
      const windowEnd = codePointBoundary(text, Math.min(text.length, search + MAX_PATTERN_WINDOW));
      const m = this.re.matcher(text.slice(search, windowEnd));
      if (!m.find(0)) {
        search = windowEnd;
        continue;
      }
      const matchStart = search + m.start();
      const matchEnd = search + m.end();
      if (matchEnd > matchStart) {
        if (matchStart === start) {
          this.pos = matchEnd;
          return text.slice(start, matchEnd);
        }
        if (matchStart > gapLimit) {
          // Unmatched text reaches the limit first: it ends there, and the next search starts
          // afresh from there.
          this.pos = gapLimit;
          return text.slice(start, gapLimit);
        }
        // The unmatched text before the match is a piece of its own.
        this.pos = matchStart;
        this.pendingEnd = matchEnd;
        return text.slice(start, matchStart);
      }
      search = matchStart + codePointLength(text, matchStart);
    }
  }
}

/** All pre-tokens of `text` (mostly for tests and inspection). */
export function pretokenize(text: string, spec: string | PretokenizerSpec | Pretokenizer = {}): string[] {
  const pre = resolveAny(spec);
  const pieces: string[] = [];
  pre.start(text);
  let piece: string | null;
  while ((piece = pre.next()) !== null) pieces.push(piece);
  return pieces;
}

/** Calls `onPiece` for each pre-token of `text`, in order. */
export function forEachPiece(text: string, pre: Pretokenizer, onPiece: (piece: string) => void): void {
  pre.start(text);
  let piece: string | null;
  while ((piece = pre.next()) !== null) onPiece(piece);
}

/** A pre-tokenizer from a pattern string (GPT-2's, another built-in's, or a user pattern), a spec, or itself. */
export function resolveAny(spec: string | PretokenizerSpec | Pretokenizer): Pretokenizer {
  if (typeof spec === 'string') return resolvePretokenizer({ pattern: spec });
  if ('next' in spec && typeof spec.next === 'function') return spec;
  return resolvePretokenizer(spec as PretokenizerSpec);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/**
 * A matcher for special tokens; longer tokens are tried first so that "<|a|>x" wins over
 * "<|a|>" when both are registered. Null when there are none.
 */
export function compileSpecialMatcher(specialTokens: readonly string[]): RegExp | null {
  if (specialTokens.length === 0) return null;
  const sorted = [...specialTokens].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
  return new RegExp(sorted.map(escapeRegExp).join('|'), 'gu');
}

/**
 * Splits `text` around special tokens: `onText` gets each stretch of ordinary text (possibly
 * empty pieces are skipped), `onSpecial` each special token, in order.
 */
export function splitOnSpecial(
  text: string,
  matcher: RegExp | null,
  onText: (chunk: string) => void,
  onSpecial: (token: string) => void,
): void {
  if (matcher === null) {
    if (text.length > 0) onText(text);
    return;
  }
  matcher.lastIndex = 0;
  let start = 0;
  let m: RegExpExecArray | null;
  while ((m = matcher.exec(text)) !== null) {
    if (m.index > start) onText(text.slice(start, m.index));
    onSpecial(m[0]);
    start = m.index + m[0].length;
  }
  if (start < text.length) onText(text.slice(start));
}
