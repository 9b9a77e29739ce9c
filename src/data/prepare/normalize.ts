/**
 * Text normalisation applied to every document before any filter sees it, so that the filters,
 * the exact-dedup hash and the MinHash shingles all compare like with like: one Unicode form, one
 * line ending, no invisible control characters, no trailing blanks.
 */

export interface NormalizeOptions {
  /**
   * Map non-breaking and other Unicode space characters (U+00A0, U+2000..U+200A, U+3000, ...) to an
   * ASCII space; default true. They are invisible in the text but split words differently and make
   * otherwise identical documents hash differently.
   */
  unicodeSpaces?: boolean;
}

// Every Unicode "space separator" (Zs) except the ASCII space itself, plus the Ogham space mark
// (also Zs). Written out rather than \p{Zs} so that the set is visible here.
const UNICODE_SPACES = /[\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]/g;
// C0 and C1 controls and DEL, except \t and \n (\r is turned into \n before this runs).
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

/**
 * NFC; CRLF and lone CR → LF; control characters other than \n and \t removed; (optionally) Unicode
 * spaces → ' '; trailing whitespace on every line removed; runs of three or more newlines → two
 * (one blank line, the paragraph break); leading blank lines and trailing whitespace of the
 * document removed. The first line's indentation is kept: it can be meaningful (code, verse).
 */
export function normalizeText(text: string, options: NormalizeOptions = {}): string {
  let out = text.normalize('NFC').replace(/\r\n?/g, '\n').replace(CONTROL_CHARACTERS, '');
  // A byte-order mark is an encoding artefact, not text: drop it at the start of a document.
  if (out.charCodeAt(0) === 0xfeff) out = out.slice(1);
  if (options.unicodeSpaces ?? true) out = out.replace(UNICODE_SPACES, ' ');
  out = out.replace(/[^\S\n]+$/gm, '').replace(/\n{3,}/g, '\n\n');
  return out.replace(/^(?:[^\S\n]*\n)+/, '').trimEnd();
}
