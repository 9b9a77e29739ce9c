/**
 * Exact deduplication: two documents are the same when their normalised text is equal after case
 * folding and collapsing all whitespace to one space. Only a 128-bit prefix of each SHA-256 is
 * kept (16 bytes per document; a collision among 10^12 documents has probability ~10^-15).
 */
import { createHash } from 'node:crypto';

/** The key two exact duplicates share. */
export function exactDedupKey(text: string): string {
  const canonical = text.toLowerCase().replace(/\s+/g, ' ').trim();
  return createHash('sha256').update(canonical, 'utf8').digest('base64').slice(0, 22);
}

/** Remembers the keys of the documents seen so far; the first of a set of duplicates is kept. */
export class ExactDeduplicator {
  private readonly seen = new Set<string>();

  /** True when an equal document was seen before; otherwise remembers this one and returns false. */
  isDuplicate(text: string): boolean {
    const key = exactDedupKey(text);
    if (this.seen.has(key)) return true;
    this.seen.add(key);
    return false;
  }

  get size(): number {
    return this.seen.size;
  }
}
