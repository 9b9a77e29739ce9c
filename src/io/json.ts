/**
 * JSON from files that may be damaged or hostile, and the short descriptions error messages need.
 *
 * `parseJsonText` strips a UTF-8 byte-order mark, bounds the nesting depth (MAX_JSON_DEPTH: a
 * 100,000-deep array parses, but any recursive walk over it — JSON.stringify for a message, a
 * validator — overflows the stack), can cap the number of top-level keys and reject duplicate
 * keys (invisible to JSON.parse, which keeps the last), and turns a SyntaxError into one line that
 * names the file. `describeValue`, `quoteText` and `truncateList` keep messages short whatever the
 * file holds: a message never embeds a value, a name or a list whole.
 */

/** Deepest nesting of arrays and objects `parseJsonText` accepts by default. */
export const MAX_JSON_DEPTH = 64;
/** Items a message lists before "… and N more". */
export const MAX_LISTED_ITEMS = 5;
/** Characters of a string (a name, a value) a message quotes before cutting it with "…". */
export const MAX_QUOTED_CHARS = 60;

export interface JsonLimits {
  /** Deepest nesting of arrays/objects (default MAX_JSON_DEPTH). */
  maxDepth?: number;
  /** Most keys the top-level object may have (default: no limit). */
  maxTopLevelKeys?: number;
  /** Reject an object that names a key twice (default true). */
  rejectDuplicateKeys?: boolean;
}

/** The text without a leading UTF-8 byte-order mark (U+FEFF). */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffd]/g;

/**
 * `text` with control characters (C0, DEL, C1), line/paragraph separators and U+FFFD written as
 * `\uXXXX` escapes: raw bytes of a damaged file never reach a terminal through a message.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `text` as a JSON string literal (escapes keep it on one line), cut to `max` characters. */
export function quoteText(text: string, max = MAX_QUOTED_CHARS): string {
  return escapeControls(text.length > max ? `${JSON.stringify(text.slice(0, max))}…` : JSON.stringify(text));
}

/** A few words for any value: `null`, `-5`, `the string "abc"`, `an array of 3 items`, `an object`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return `the string ${quoteText(value, 40)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

/** "a, b, c" — or the first `max` items and "… and 903 more". */
export function truncateList(items: readonly string[], max = MAX_LISTED_ITEMS): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} … and ${items.length - max} more`;
}

/** A message cut to `max` characters (the tail of a long parser message is rarely useful). */
export function truncateMessage(message: string, max = 160): string {
  const one = escapeControls(message.replace(/\s+/g, ' '));
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/**
 * One linear scan of JSON text for what JSON.parse does not check: nesting depth, the number of
 * top-level keys, duplicate keys in any object. Returns the first problem, or null. Text that is
 * not valid JSON may scan clean; JSON.parse reports it.
 */
export function scanJson(text: string, limits: JsonLimits = {}): string | null {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const maxTop = limits.maxTopLevelKeys ?? Infinity;
  const duplicates = limits.rejectDuplicateKeys ?? true;
  // One frame per open array/object: its keys (objects) and whether the next string is a key.
  const frames: { keys: Set<string> | null; expectKey: boolean; count: number }[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      // The closing quote: the next one not escaped by an odd run of backslashes.
      let j = i + 1;
      for (;;) {
        j = text.indexOf('"', j);
        if (j < 0) return null; // unterminated: JSON.parse reports it
        let k = j - 1;
        while (text.charCodeAt(k) === 0x5c /* \ */) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j++;
      }
      const top = frames[frames.length - 1];
      if (top !== undefined && top.keys !== null && top.expectKey) {
        top.expectKey = false;
        let key = text.slice(i + 1, j);
        if (key.includes('\\')) {
          try {
            key = JSON.parse(text.slice(i, j + 1)) as string;
          } catch {
            return null; // a bad escape: JSON.parse reports it
          }
        }
        if (frames.length === 1 && ++top.count > maxTop) return `the top-level object has more than ${maxTop} keys`;
        if (duplicates) {
          if (top.keys.has(key)) return `the key ${quoteText(key)} appears twice in one object`;
          top.keys.add(key);
        }
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (frames.length >= maxDepth) return `it is nested deeper than ${maxDepth} levels`;
      frames.push({ keys: c === 0x7b ? new Set() : null, expectKey: c === 0x7b, count: 0 });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      if (top !== undefined && top.keys !== null) top.expectKey = true;
    }
    i++;
  }
  return null;
}

/**
 * Parses JSON text read from a file. `where` names the file (and the field, for JSON inside a
 * field), e.g. "checkpoint runs/a/best.safetensors: metadata 'meta'"; every error is one line
 * starting with it. A UTF-8 byte-order mark is skipped.
 */
export function parseJsonText(text: string, where: string, limits: JsonLimits = {}): unknown {
  const body = stripBom(text);
  const problem = scanJson(body, limits);
  if (problem !== null) throw new Error(`${where}: invalid JSON: ${problem}`);
  return parseScannedJson(body, where);
}

/** JSON.parse of text that scanJson has passed, with parseJsonText's one-line errors. */
export function parseScannedJson(body: string, where: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch (error) {
    if (body.trim() === '') throw new Error(`${where}: invalid JSON: it is empty`);
    throw new Error(`${where}: invalid JSON (${truncateMessage(error instanceof Error ? error.message : String(error))})`);
  }
}

/** True for a plain JSON object (not null, not an array). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
