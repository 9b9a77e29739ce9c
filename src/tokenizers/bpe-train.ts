/**
 * Byte-level BPE training with incremental pair counts.
 *
 * 1. Pre-tokenise the corpus and count distinct pre-tokens ("words"): merges never cross a word
 *    boundary, so a word seen 10,000 times is processed once with weight 10,000.
 * 2. Count adjacent symbol pairs over the words, and index which words contain each pair.
 * 3. Repeatedly merge the best pair. Only the words containing it are rewritten, and only the
 *    pair counts those words contribute are adjusted; a max-heap finds the best pair without
 *    scanning all pairs.
 *
 * Tie-breaking (as in CS336, which reproduces GPT-2's trainer): among the pairs with the highest
 * count, pick the lexicographically greatest (bytes(a), bytes(b)) — compare the left tokens'
 * bytes, then the right tokens'. This makes training deterministic and independent of Map order.
 */
import { compareBytes, concatBytes, bytesKey, utf8Encode } from './bytes.js';
import { MAX_TOKEN_ID, pairKey } from './bpe-merge.js';
import { compileSpecialMatcher, forEachPiece, resolveAny, splitOnSpecial, type Pretokenizer, type PretokenizerSpec } from './pretokenize.js';

export interface TrainedBPE {
  /** Bytes of each ordinary token by id: ids 0–255 are the single bytes, merges follow. */
  tokens: Uint8Array[];
  /** (left, right, result) ids in the order they were learned. */
  merges: Array<[number, number, number]>;
}

/**
 * Counts of pre-tokens over all texts; special tokens only separate text and are not counted.
 * The pre-tokenizer is the one encoding uses (a pattern string resolves as in `resolvePretokenizer`:
 * a built-in's exact pattern selects the built-in, any other runs on RE2).
 */
export function countPretokens(
  texts: Iterable<string>,
  pretokenizer: string | PretokenizerSpec | Pretokenizer,
  specialTokens: readonly string[],
): Map<string, number> {
  const pre = resolveAny(pretokenizer);
  const special = compileSpecialMatcher(specialTokens);
  const counts = new Map<string, number>();
  const add = (piece: string): void => {
    counts.set(piece, (counts.get(piece) ?? 0) + 1);
  };
  for (const text of texts) {
    splitOnSpecial(
      text,
      special,
      (chunk) => forEachPiece(chunk, pre, add),
      () => {},
    );
  }
  return counts;
}

/**
 * A binary max-heap of (count, left, right) with lazy invalidation: an entry may be out of date,
 * and the caller checks it against the live count when it pops. Parallel arrays avoid an object
 * per entry.
 */
class PairHeap {
  private counts: number[] = [];
  private lefts: number[] = [];
  private rights: number[] = [];

  constructor(private readonly tokens: Uint8Array[]) {}

  get size(): number {
    return this.counts.length;
  }

  /** True when entry i should pop before entry j. */
  private before(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    if (ci !== cj) return ci > cj;
    const byLeft = compareBytes(this.tokens[this.lefts[i]], this.tokens[this.lefts[j]]);
    if (byLeft !== 0) return byLeft > 0;
    return compareBytes(this.tokens[this.rights[i]], this.tokens[this.rights[j]]) > 0;
  }

  private swap(i: number, j: number): void {
    const { counts, lefts, rights } = this;
    [counts[i], counts[j]] = [counts[j], counts[i]];
    [lefts[i], lefts[j]] = [lefts[j], lefts[i]];
    [rights[i], rights[j]] = [rights[j], rights[i]];
  }

  push(count: number, left: number, right: number): void {
    this.counts.push(count);
    this.lefts.push(left);
    this.rights.push(right);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top entry and returns it as [count, left, right]. */
  pop(): [number, number, number] {
    const top: [number, number, number] = [this.counts[0], this.lefts[0], this.rights[0]];
    const last = this.counts.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.lefts.pop();
    this.rights.pop();
    const n = this.counts.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.before(l, best)) best = l;
      if (r < n && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }
}

/**
 * Learns merges until the vocabulary of ordinary tokens reaches `targetTokens` (256 bytes +
 * merges) or no pair is left. When a merge produces bytes that are already a token (possible,
 * e.g. "ab"+"c" and "a"+"bc"), the merge is recorded with the existing id, as HF tokenizers do,
 * so every token's bytes stay unique (vocab.json maps strings to ids).
 */
export function trainBPEFromCounts(wordCounts: ReadonlyMap<string, number>, targetTokens: number): TrainedBPE {
  if (targetTokens > MAX_TOKEN_ID) throw new RangeError(`BPE training: at most ${MAX_TOKEN_ID} tokens are supported, asked for ${targetTokens}`);
  const tokens: Uint8Array[] = [];
  const idOfBytes = new Map<string, number>();
  for (let b = 0; b < 256; b++) {
    tokens.push(Uint8Array.of(b));
    idOfBytes.set(String.fromCharCode(b), b);
  }

  // Words as arrays of token ids, with their corpus counts.
  const words: number[][] = [];
  const weights: number[] = [];
  for (const [piece, count] of wordCounts) {
    words.push(Array.from(utf8Encode(piece)));
    weights.push(count);
  }

  const pairCounts = new Map<number, number>();
  // The words that contained each pair when they were added. A word can lose the pair later
  // (another merge took one of its symbols); it then stays listed and is skipped when scanned.
  const pairWords = new Map<number, Set<number>>();
  const addToIndex = (key: number, w: number): void => {
    let set = pairWords.get(key);
    if (set === undefined) pairWords.set(key, (set = new Set()));
    set.add(w);
  };
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    for (let i = 0; i + 1 < word.length; i++) {
      const key = pairKey(word[i], word[i + 1]);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + weights[w]);
      addToIndex(key, w);
    }
  }

  const heap = new PairHeap(tokens);
  for (const [key, count] of pairCounts) heap.push(count, Math.floor(key / MAX_TOKEN_ID), key % MAX_TOKEN_ID);

  const merges: Array<[number, number, number]> = [];
  while (tokens.length < targetTokens && heap.size > 0) {
    const [count, a, b] = heap.pop();
    const key = pairKey(a, b);
    const live = pairCounts.get(key) ?? 0;
    // Counts only go up through a push of the new value, so an entry above the live count is
    // stale-high (re-queue the live value) and one below it is superseded (drop it).
    if (live !== count) {
      if (live > 0 && live < count) heap.push(live, a, b);
      continue;
    }

    const mergedBytes = concatBytes(tokens[a], tokens[b]);
    const mergedKey = bytesKey(mergedBytes);
    let c = idOfBytes.get(mergedKey);
    if (c === undefined) {
      c = tokens.length;
      tokens.push(mergedBytes);
      idOfBytes.set(mergedKey, c);
    }
    merges.push([a, b, c]);

    // Net change of every pair count over all rewritten words; most pairs of a word reappear
    // unchanged and cancel out here instead of churning the heap.
    const delta = new Map<number, number>();
    const affected = pairWords.get(key);
    pairWords.delete(key);
    pairCounts.delete(key);
    if (affected === undefined) continue;
    for (const w of affected) {
      const word = words[w];
      const merged: number[] = [];
      let changed = false;
      for (let i = 0; i < word.length; ) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          merged.push(c);
          i += 2;
          changed = true;
        } else {
          merged.push(word[i]);
          i++;
        }
      }
      if (!changed) continue;
      const weight = weights[w];
      for (let i = 0; i + 1 < word.length; i++) {
        const k = pairKey(word[i], word[i + 1]);
        delta.set(k, (delta.get(k) ?? 0) - weight);
      }
      for (let i = 0; i + 1 < merged.length; i++) {
        const k = pairKey(merged[i], merged[i + 1]);
        delta.set(k, (delta.get(k) ?? 0) + weight);
        if (merged[i] === c || merged[i + 1] === c) addToIndex(k, w);
      }
      words[w] = merged;
    }
    for (const [k, d] of delta) {
      if (d === 0 || k === key) continue;
      const updated = (pairCounts.get(k) ?? 0) + d;
      if (updated <= 0) {
        pairCounts.delete(k);
        pairWords.delete(k);
      } else {
        pairCounts.set(k, updated);
        if (d > 0) heap.push(updated, Math.floor(k / MAX_TOKEN_ID), k % MAX_TOKEN_ID);
      }
    }
  }
  return { tokens, merges };
}
