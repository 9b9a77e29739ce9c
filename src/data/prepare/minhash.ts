/**
 * Near-duplicate detection with MinHash (Broder 1997) and LSH banding (Leskovec, Rajaraman &
 * Ullman, Mining of Massive Datasets, ch. 3), in one streaming pass.
 *
 * A document is a set of shingles (word n-grams, 5 by default; character 5-grams for documents
 * with fewer words than that). Each of `numPerm` seeded hash functions maps every shingle to a
 * 32-bit value; the signature keeps each function's minimum. Two documents agree on one signature
 * position with probability equal to their Jaccard similarity, so the fraction of equal positions
 * estimates it.
 *
 * Comparing every pair is quadratic, so the signature is cut into `bands` bands of `rows` rows;
 * documents sharing a whole band land in the same bucket and become candidates. A pair with
 * Jaccard s becomes a candidate with probability 1 - (1 - s^rows)^bands, an S-curve whose steep
 * part sits near (1/bands)^(1/rows); chooseBands places it at the threshold. Candidates are then
 * confirmed with the full signature, so a candidate below the threshold costs time, never recall.
 */
import { fmix32 } from '../../math.js';

/** FNV-1a over UTF-16 code units, finalised; the hash of one word or character n-gram. */
function hashString(text: string, start = 0, end = text.length): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** splitmix32: a small seeded generator for the hash functions' coefficients. */
function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    return fmix32(state);
  };
}

export interface ShingleOptions {
  /** Words per shingle; default 5. */
  shingleSize?: number;
  /** Characters per shingle for documents with fewer than shingleSize words; default 5. */
  charShingleSize?: number;
}

/**
 * The 32-bit hashes of a document's shingles (with repeats; a set is not needed for a minimum).
 * Words are lower-cased runs of letters and digits, so punctuation and case changes do not count
 * as differences.
 */
export function shingleHashes(text: string, options: ShingleOptions = {}): Uint32Array {
  const k = options.shingleSize ?? 5;
  const words = text.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((w) => w.length > 0);
  if (words.length >= k) {
    const wordHashes = words.map((w) => hashString(w));
    const out = new Uint32Array(words.length - k + 1);
    for (let i = 0; i < out.length; i++) {
      let h = 0x9747b28c;
      for (let j = 0; j < k; j++) h = fmix32(Math.imul(h, 31) + wordHashes[i + j]);
      out[i] = h;
    }
    return out;
  }
  // Too few words for one word shingle: character n-grams of the collapsed text.
  const c = options.charShingleSize ?? 5;
  const flat = words.join(' ');
  if (flat.length === 0) return new Uint32Array(0);
  if (flat.length <= c) return Uint32Array.of(hashString(flat));
  const out = new Uint32Array(flat.length - c + 1);
  for (let i = 0; i < out.length; i++) out[i] = hashString(flat, i, i + c);
  return out;
}

export interface MinHashOptions extends ShingleOptions {
  /** Hash functions, i.e. signature length; default 128. */
  numPerm?: number;
  /** Seed of the hash functions; the same seed gives the same signatures. Default 1. */
  seed?: number;
}

/** Computes MinHash signatures with `numPerm` seeded hash functions. */
export class MinHasher {
  readonly numPerm: number;
  readonly seed: number;
  readonly shingleOptions: Required<ShingleOptions>;
  private readonly multipliers: Uint32Array;
  private readonly offsets: Uint32Array;

  constructor(options: MinHashOptions = {}) {
    this.numPerm = options.numPerm ?? 128;
    this.seed = options.seed ?? 1;
    this.shingleOptions = { shingleSize: options.shingleSize ?? 5, charShingleSize: options.charShingleSize ?? 5 };
    if (!Number.isInteger(this.numPerm) || this.numPerm < 1) throw new RangeError(`MinHasher: numPerm must be a positive integer, got ${this.numPerm}`);
    if (!Number.isInteger(this.shingleOptions.shingleSize) || this.shingleOptions.shingleSize < 1) {
      throw new RangeError(`MinHasher: shingleSize must be a positive integer, got ${this.shingleOptions.shingleSize}`);
    }
    const random = splitmix32(this.seed);
    this.multipliers = new Uint32Array(this.numPerm);
    this.offsets = new Uint32Array(this.numPerm);
    for (let i = 0; i < this.numPerm; i++) {
      this.multipliers[i] = random() | 1; // odd: x → a·x + b mod 2^32 is then a bijection
      this.offsets[i] = random();
    }
  }

  /**
   * The signature of a text. Hash function i is h_i(x) = fmix32(a_i·x + b_i mod 2^32): the
   * universal affine map, then murmur's finaliser, because the low bits of a·x + b depend only on
   * the low bits of x and the minimum would otherwise be decided by few bits. An empty text has
   * the all-0xffffffff signature.
   */
  signature(text: string): Uint32Array {
    return this.signatureOf(shingleHashes(text, this.shingleOptions));
  }

  signatureOf(shingles: Uint32Array): Uint32Array {
    const n = this.numPerm;
    const sig = new Uint32Array(n).fill(0xffffffff);
    const a = this.multipliers;
    const b = this.offsets;
    for (let s = 0; s < shingles.length; s++) {
      const x = shingles[s];
      for (let i = 0; i < n; i++) {
        const v = fmix32(Math.imul(a[i], x) + b[i]);
        if (v < sig[i]) sig[i] = v;
      }
    }
    return sig;
  }
}

/** The fraction of equal positions: the MinHash estimate of the Jaccard similarity. */
export function estimateJaccard(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) throw new RangeError(`estimateJaccard: signatures of different lengths (${a.length} and ${b.length})`);
  let equal = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) equal++;
  return a.length === 0 ? 0 : equal / a.length;
}

/** Probability that a pair with Jaccard similarity s shares at least one band. */
export function candidateProbability(s: number, bands: number, rows: number): number {
  return 1 - Math.pow(1 - Math.pow(s, rows), bands);
}

/** Simpson's rule with 64 intervals: ample for these smooth curves. */
function integrate(f: (x: number) => number, lo: number, hi: number): number {
  const n = 64;
  const h = (hi - lo) / n;
  let sum = f(lo) + f(hi);
  for (let i = 1; i < n; i++) sum += f(lo + i * h) * (i % 2 === 1 ? 4 : 2);
  return (sum * h) / 3;
}

export interface BandChoice {
  bands: number;
  rows: number;
  /** Area under the S-curve below the threshold (candidates that are not near duplicates). */
  falsePositiveArea: number;
  /** Area above the curve beyond the threshold (near duplicates never compared). */
  falseNegativeArea: number;
}

/**
 * The banding (bands × rows ≤ numPerm) that minimises
 * falsePositiveWeight · ∫₀ᵗ P(s) ds + falseNegativeWeight · ∫ₜ¹ (1 − P(s)) ds, as datasketch does.
 * The default weights favour recall (0.25 / 0.75): a false positive only costs one signature
 * comparison, since candidates are confirmed with the full signature, while a false negative is a
 * duplicate kept for good.
 */
export function chooseBands(numPerm: number, threshold: number, falsePositiveWeight = 0.25, falseNegativeWeight = 0.75): BandChoice {
  if (!(threshold > 0 && threshold < 1)) throw new RangeError(`chooseBands: threshold must be in (0, 1), got ${threshold}`);
  let best: BandChoice | null = null;
  let bestError = Infinity;
  for (let bands = 1; bands <= numPerm; bands++) {
    for (let rows = 1; bands * rows <= numPerm; rows++) {
      const falsePositiveArea = integrate((s) => candidateProbability(s, bands, rows), 0, threshold);
      const falseNegativeArea = integrate((s) => 1 - candidateProbability(s, bands, rows), threshold, 1);
      const error = falsePositiveWeight * falsePositiveArea + falseNegativeWeight * falseNegativeArea;
      if (error < bestError) {
        bestError = error;
        best = { bands, rows, falsePositiveArea, falseNegativeArea };
      }
    }
  }
  return best as BandChoice;
}

export interface NearDuplicateIndexOptions {
  numPerm: number;
  /** Estimated Jaccard similarity at or above which a document is a near duplicate. */
  threshold: number;
  bands?: number;
  rows?: number;
}

/**
 * The kept documents' signatures and band buckets. Memory per kept document: its signature
 * (4·numPerm bytes) and one bucket entry per band; never its text.
 */
export class NearDuplicateIndex {
  readonly numPerm: number;
  readonly threshold: number;
  readonly bands: number;
  readonly rows: number;
  private readonly signatures: Uint32Array[] = [];
  // One map per band: 48-bit hash of the band's rows → ids of kept documents.
  private readonly buckets: Map<number, number[]>[];

  constructor(options: NearDuplicateIndexOptions) {
    this.numPerm = options.numPerm;
    this.threshold = options.threshold;
    const choice = options.bands !== undefined && options.rows !== undefined ? options : chooseBands(options.numPerm, options.threshold);
    this.bands = choice.bands as number;
    this.rows = choice.rows as number;
    if (this.bands * this.rows > this.numPerm) throw new RangeError(`NearDuplicateIndex: bands × rows (${this.bands} × ${this.rows}) exceeds numPerm ${this.numPerm}`);
    this.buckets = Array.from({ length: this.bands }, () => new Map<number, number[]>());
  }

  get size(): number {
    return this.signatures.length;
  }

  private bandKey(sig: Uint32Array, band: number): number {
    let h1 = 0x2545f491;
    let h2 = 0x9e3779b9 ^ band;
    for (let r = band * this.rows; r < (band + 1) * this.rows; r++) {
      h1 = fmix32(Math.imul(h1, 31) + sig[r]);
      h2 = fmix32(h2 ^ sig[r]);
    }
    // 48 bits: a false bucket match only adds a candidate, which the full signature then rejects.
    return h1 * 65536 + (h2 & 0xffff);
  }

  /** The id and estimated similarity of a kept document this signature nearly duplicates, or null. */
  findDuplicate(sig: Uint32Array): { id: number; similarity: number } | null {
    const checked = new Set<number>();
    for (let band = 0; band < this.bands; band++) {
      const ids = this.buckets[band].get(this.bandKey(sig, band));
      if (!ids) continue;
      for (const id of ids) {
        if (checked.has(id)) continue;
        checked.add(id);
        const similarity = estimateJaccard(sig, this.signatures[id]);
        if (similarity >= this.threshold) return { id, similarity };
      }
    }
    return null;
  }

  /** Adds a kept document's signature; returns its id. */
  add(sig: Uint32Array): number {
    const id = this.signatures.length;
    this.signatures.push(sig);
    for (let band = 0; band < this.bands; band++) {
      const key = this.bandKey(sig, band);
      const ids = this.buckets[band].get(key);
      if (ids) ids.push(id);
      else this.buckets[band].set(key, [id]);
    }
    return id;
  }
}
