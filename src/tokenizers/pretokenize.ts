/**
 * Pre-tokenisation: the text is cut into pieces (words with their leading space, numbers, runs of
 * punctuation, runs of whitespace) and BPE merges never cross a piece boundary. Special tokens
 * are cut out before that, so they are never split and never merged with their neighbours.
 */

/**
 * GPT-2's pattern. Python's `regex` module (which GPT-2 uses) reads `\s` as the Unicode
 * White_Space property, while JavaScript's `\s` also matches U+FEFF and misses U+0085, so the
 * property is spelled out to give the same pieces as GPT-2 on every input.
 */
export const GPT2_PATTERN =
  String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+`;

/** Compiles a pre-tokenisation pattern (always with the `u` flag, which `\p{…}` needs). */
export function compilePattern(pattern: string): RegExp {
  try {
    return new RegExp(pattern, 'gu');
  } catch (error) {
    throw new Error(`invalid pre-tokenisation pattern /${pattern}/u: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * The next pre-token of `text` from `regex.lastIndex` on (set it to 0 to start), or null at the
 * end. A step function rather than a callback, so that BPE's encode loop, which runs once per
 * piece, can use it and stay a plain loop.
 */
export function nextPiece(text: string, regex: RegExp): string | null {
  let m: RegExpExecArray | null;
  while ((m = regex.exec(text)) !== null) {
    if (m[0].length > 0) return m[0];
    // A pattern that can match the empty string would otherwise loop forever.
    regex.lastIndex++;
  }
  return null;
}

/** Calls `onPiece` for each pre-token of `text`, in order. */
export function forEachPiece(text: string, regex: RegExp, onPiece: (piece: string) => void): void {
  regex.lastIndex = 0;
  let piece: string | null;
  while ((piece = nextPiece(text, regex)) !== null) onPiece(piece);
}

/** All pre-tokens of `text` (mostly for tests and inspection). */
export function pretokenize(text: string, pattern: string = GPT2_PATTERN): string[] {
  const pieces: string[] = [];
  forEachPiece(text, compilePattern(pattern), (p) => pieces.push(p));
  return pieces;
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
