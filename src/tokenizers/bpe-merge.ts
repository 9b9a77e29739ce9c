/**
 * Applying learned merges to one pre-token (the inner loop of BPE encoding).
 *
 * The rule is GPT-2's: repeatedly take the adjacent pair with the lowest merge rank and merge
 * every occurrence of it, left to right. Two implementations give identical results: a simple
 * scan for short pieces (nearly all of them) and a linked list with a heap for long ones, so a
 * megabyte-long run of letters costs O(n log n) instead of O(n · merges).
 */

/** Pair keys fit in a double exactly while ids stay below 2^21. */
export const MAX_TOKEN_ID = 1 << 21;

export function pairKey(a: number, b: number): number {
  return a * MAX_TOKEN_ID + b;
}

export interface MergeTable {
  /** Rank (0 = merged first) of each mergeable pair, by `pairKey`. */
  readonly ranks: ReadonlyMap<number, number>;
  /** Id produced by the merge of each rank. */
  readonly results: readonly number[] | Int32Array;
}

/** Pieces up to this many bytes use the scanning version. */
const SHORT_PIECE = 48;

export function applyMerges(ids: number[], table: MergeTable): number[] {
  return ids.length <= SHORT_PIECE ? applyMergesScan(ids, table) : applyMergesHeap(ids, table);
}

export function applyMergesScan(ids: number[], table: MergeTable): number[] {
  const { ranks, results } = table;
  let word = ids;
  while (word.length >= 2) {
    let bestRank = Infinity;
    let bestAt = -1;
    for (let i = 0; i + 1 < word.length; i++) {
      const r = ranks.get(pairKey(word[i], word[i + 1]));
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        bestAt = i;
      }
    }
    if (bestAt < 0) break;
    const a = word[bestAt];
    const b = word[bestAt + 1];
    const merged = results[bestRank];
    const next = word.slice(0, bestAt);
    let i = bestAt;
    while (i < word.length) {
      if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
        next.push(merged);
        i += 2;
      } else {
        next.push(word[i]);
        i++;
      }
    }
    word = next;
  }
  return word;
}

/**
 * Same result as `applyMergesScan`. Candidates are (rank, position) pairs in a min-heap; an entry
 * is stale when either symbol was merged away since it was pushed, which is checked on pop.
 * Ties in rank pop in position order, which reproduces the left-to-right pass.
 */
export function applyMergesHeap(ids: number[], table: MergeTable): number[] {
  const { ranks, results } = table;
  const n = ids.length;
  const sym = Int32Array.from(ids);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // rank * 2^31 + position stays below 2^53, so one double orders by rank then position.
  const heap: number[] = [];
  const push = (rank: number, pos: number): void => {
    heap.push(rank * 2147483648 + pos);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent] <= heap[i]) break;
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap.pop() as number;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l] < heap[m]) m = l;
        if (r < heap.length && heap[r] < heap[m]) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  };
  const consider = (pos: number): void => {
    const j = next[pos];
    if (j < 0) return;
    const r = ranks.get(pairKey(sym[pos], sym[j]));
    if (r !== undefined) push(r, pos);
  };

  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.length > 0) {
    const entry = pop();
    const rank = Math.floor(entry / 2147483648);
    const pos = entry - rank * 2147483648;
    const j = next[pos];
    if (!alive[pos] || j < 0 || ranks.get(pairKey(sym[pos], sym[j])) !== rank) continue;
    sym[pos] = results[rank];
    alive[j] = 0;
    next[pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = pos;
    if (prev[pos] >= 0) consider(prev[pos]);
    consider(pos);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0 && i < n; i = next[i]) out.push(sym[i]);
  return out;
}
