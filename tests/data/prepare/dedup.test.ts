/** Exact and near-duplicate removal; near-dup precision and recall on a corpus with planted copies. */
import { describe, expect, it } from 'vitest';
import { ExactDeduplicator, exactDedupKey } from '../../../src/data/prepare/dedup.js';
import { QUALITY_RULE_NAMES, defaultQualityRules, setRulesEnabled } from '../../../src/data/prepare/filters.js';
import { candidateProbability, chooseBands, estimateJaccard, MinHasher, NearDuplicateIndex, shingleHashes } from '../../../src/data/prepare/minhash.js';
import { DocumentCleaner, type CleanOptions } from '../../../src/data/prepare/prepare.js';

// A seeded generator of random-word documents with planted exact and near copies.

/** mulberry32: a tiny seeded PRNG (tests only need determinism, not quality). */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'be', 'do', 'fi', 'gu', 'ha', 'je', 'po', 'ze', 'an', 'or', 'el', 'is'];

function vocabulary(random: () => number, size: number): string[] {
  const words = new Set<string>();
  while (words.size < size) {
    const n = 1 + Math.floor(random() * 3);
    let w = '';
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    words.add(w);
  }
  return [...words];
}

/** Applies word edits at `rate`: each edit substitutes, deletes or inserts one word (a third each). */
function editWords(words: readonly string[], rate: number, random: () => number, vocab: readonly string[]): string[] {
  const out: string[] = [];
  const pick = (): string => vocab[Math.floor(random() * vocab.length)];
  for (const word of words) {
    if (random() >= rate) {
      out.push(word);
      continue;
    }
    const kind = Math.floor(random() * 3);
    if (kind === 0) out.push(pick());
    else if (kind === 2) out.push(word, pick());
    // kind 1: deleted
  }
  return out;
}

interface PlantedDocument {
  text: string;
  /** -1 for an original; otherwise the word-edit rate of this copy (0 = exact copy). */
  editRate: number;
  /** Index of the original this copies (its own index for an original). */
  original: number;
}

/** `originals` random documents of `words` words, then `copiesPerRate` copies per edit rate, shuffled among themselves. */
function plantedCorpus(seed: number, originals: number, words: number, rates: readonly number[], copiesPerRate: number): PlantedDocument[] {
  const random = seededRandom(seed);
  const vocab = vocabulary(random, 3000);
  const sources: string[][] = [];
  const docs: PlantedDocument[] = [];
  for (let i = 0; i < originals; i++) {
    const ws = Array.from({ length: words }, () => vocab[Math.floor(random() * vocab.length)]);
    sources.push(ws);
    docs.push({ text: ws.join(' '), editRate: -1, original: i });
  }
  const copies: PlantedDocument[] = [];
  for (const rate of rates) {
    for (let c = 0; c < copiesPerRate; c++) {
      const original = Math.floor(random() * originals);
      copies.push({ text: editWords(sources[original], rate, random, vocab).join(' '), editRate: rate, original });
    }
  }
  for (let i = copies.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copies[i], copies[j]] = [copies[j], copies[i]];
  }
  return [...docs, ...copies];
}

const NO_RULES = setRulesEnabled(defaultQualityRules(), QUALITY_RULE_NAMES, false);

describe('exact dedup', () => {
  it('folds case and whitespace, keeps the first', () => {
    expect(exactDedupKey('Hello   World\n\nagain')).toBe(exactDedupKey('hello world again'));
    expect(exactDedupKey('hello world')).not.toBe(exactDedupKey('hello world!'));
    const d = new ExactDeduplicator();
    expect(d.isDuplicate('A b c')).toBe(false);
    expect(d.isDuplicate('a  B\tc')).toBe(true);
    expect(d.isDuplicate('a b d')).toBe(false);
    expect(d.size).toBe(2);
  });

  it('DocumentCleaner counts exact duplicates once, at exact-duplicate', () => {
    const cleaner = new DocumentCleaner({ rules: NO_RULES, dedup: 'exact' });
    expect(cleaner.clean({ text: 'One two three.', html: false }).kept).toBe(true);
    expect(cleaner.clean({ text: 'ONE two\r\nthree.  ', html: false })).toEqual({ kept: false, removedBy: 'exact-duplicate' });
    expect(cleaner.report.removed['exact-duplicate']).toEqual({ documents: 1, bytes: 17 });
    expect(cleaner.report.removed['near-duplicate']).toBeUndefined();
  });
});

describe('MinHash', () => {
  it('is deterministic for a seed and estimates Jaccard', () => {
    const a = new MinHasher({ seed: 7 });
    const b = new MinHasher({ seed: 7 });
    const text = 'the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat by the door';
    expect(a.signature(text)).toEqual(b.signature(text));
    expect(new MinHasher({ seed: 8 }).signature(text)).not.toEqual(a.signature(text));
    expect(estimateJaccard(a.signature(text), a.signature(text.toUpperCase()))).toBe(1);
    expect(estimateJaccard(a.signature(text), a.signature('completely different words that share nothing with it at all ever'))).toBeLessThan(0.1);
  });

  it('falls back to character shingles for documents shorter than one word shingle', () => {
    expect(shingleHashes('one two three', { shingleSize: 5 }).length).toBe('one two three'.length - 4);
    expect(shingleHashes('a b c d e f', { shingleSize: 5 }).length).toBe(2);
    const h = new MinHasher();
    expect(estimateJaccard(h.signature('hello there'), h.signature('hello there!'))).toBe(1);
  });

  it('places the S-curve at the threshold', () => {
    const { bands, rows } = chooseBands(128, 0.8);
    expect(bands * rows).toBeLessThanOrEqual(128);
    expect(candidateProbability(0.95, bands, rows)).toBeGreaterThan(0.99);
    expect(candidateProbability(0.5, bands, rows)).toBeLessThan(0.01);
    const index = new NearDuplicateIndex({ numPerm: 128, threshold: 0.8 });
    expect([index.bands, index.rows]).toEqual([bands, rows]);
  });
});

interface Measured {
  precision: number;
  recallByRate: Record<string, number>;
  jaccardByRate: Record<string, number>;
  removedOriginals: number;
  /** Removal rate of copies whose true Jaccard with their original is ≥ threshold + 0.05. */
  recallAboveThreshold: number;
  /** Removal rate of copies whose true Jaccard is ≤ threshold − 0.1. */
  removedWellBelowThreshold: number;
}

/** Runs the cleaner over the corpus; planted copies with editRate ≤ maxDuplicateRate are the positives. */
function measure(corpus: readonly PlantedDocument[], options: CleanOptions, maxDuplicateRate: number): Measured {
  const cleaner = new DocumentCleaner({ rules: NO_RULES, ...options });
  const hasher = new MinHasher({ shingleSize: options.shingleSize });
  const removedByRate = new Map<number, number>();
  const totalByRate = new Map<number, number>();
  const jaccardSum = new Map<number, number>();
  let truePositives = 0;
  let removed = 0;
  let removedOriginals = 0;
  const threshold = options.jaccard ?? 0.8;
  const above = { total: 0, removed: 0 };
  const below = { total: 0, removed: 0 };
  for (const doc of corpus) {
    const verdict = cleaner.clean({ text: doc.text, html: false });
    totalByRate.set(doc.editRate, (totalByRate.get(doc.editRate) ?? 0) + 1);
    if (doc.editRate >= 0) {
      // The true shingle Jaccard with the original, for the report.
      const a = new Set(shingleHashes(doc.text, hasher.shingleOptions));
      const b = new Set(shingleHashes(corpus[doc.original].text, hasher.shingleOptions));
      let inter = 0;
      for (const x of a) if (b.has(x)) inter++;
      const jaccard = inter / (a.size + b.size - inter);
      jaccardSum.set(doc.editRate, (jaccardSum.get(doc.editRate) ?? 0) + jaccard);
      const band = jaccard >= threshold + 0.05 ? above : jaccard <= threshold - 0.1 ? below : null;
      if (band) {
        band.total++;
        if (!verdict.kept) band.removed++;
      }
    }
    if (verdict.kept) continue;
    removed++;
    removedByRate.set(doc.editRate, (removedByRate.get(doc.editRate) ?? 0) + 1);
    if (doc.editRate < 0) removedOriginals++;
    else if (doc.editRate <= maxDuplicateRate) truePositives++;
  }
  const recallByRate: Record<string, number> = {};
  const jaccardByRate: Record<string, number> = {};
  for (const [rate, total] of totalByRate) {
    if (rate < 0) continue;
    recallByRate[`${rate * 100}%`] = (removedByRate.get(rate) ?? 0) / total;
    jaccardByRate[`${rate * 100}%`] = Number(((jaccardSum.get(rate) ?? 0) / total).toFixed(3));
  }
  return {
    precision: removed === 0 ? 1 : truePositives / removed,
    recallByRate,
    jaccardByRate,
    removedOriginals,
    recallAboveThreshold: above.removed / Math.max(above.total, 1),
    removedWellBelowThreshold: below.removed / Math.max(below.total, 1),
  };
}

describe('near dedup on a corpus with planted duplicates', () => {
  // 400 random documents of 200 words, then 40 copies per edit rate (0 = exact copy).
  const corpus = plantedCorpus(2024, 400, 200, [0, 0.01, 0.05, 0.1, 0.3], 40);

  it('defaults (Jaccard ≥ 0.8, word 5-grams): removes exact and lightly edited copies, nothing else', () => {
    const m = measure(corpus, { dedup: 'near', seed: 1 }, 0.05);
    console.log(`near dedup, defaults (jaccard 0.8, 5-gram shingles, 128 perms): precision ${m.precision.toFixed(3)}, recall at true J ≥ t+0.05 ${m.recallAboveThreshold.toFixed(3)}, removed at true J ≤ t−0.1 ${m.removedWellBelowThreshold.toFixed(3)}, removal rate by edit rate ${JSON.stringify(m.recallByRate)}, true 5-gram Jaccard by edit rate ${JSON.stringify(m.jaccardByRate)}`);
    expect(m.removedOriginals).toBe(0);
    expect(m.precision).toBeGreaterThanOrEqual(0.98);
    expect(m.recallByRate['0%']).toBe(1);
    // A few 1% copies have several edits and a true Jaccard near or below 0.8: the threshold,
    // not the sketch, keeps them. Against the true Jaccard, recall is what matters.
    expect(m.recallByRate['1%']).toBeGreaterThanOrEqual(0.85);
    expect(m.recallAboveThreshold).toBeGreaterThanOrEqual(0.95);
    expect(m.removedWellBelowThreshold).toBeLessThanOrEqual(0.05);
    // 5-gram Jaccard falls fast with edits (≈ (1-p)^5 / (2 - (1-p)^5)): 10% and 30% copies are
    // below 0.8 and stay.
    expect(m.recallByRate['10%']).toBeLessThanOrEqual(0.05);
    expect(m.recallByRate['30%']).toBe(0);
  });

  it('an edit-tolerant setting (Jaccard ≥ 0.5, word 3-grams): ≤ 10% edits removed, 30% edits kept', () => {
    const m = measure(corpus, { dedup: 'near', jaccard: 0.5, shingleSize: 3, seed: 1 }, 0.1);
    console.log(`near dedup, jaccard 0.5, 3-gram shingles: precision ${m.precision.toFixed(3)}, recall at true J ≥ t+0.05 ${m.recallAboveThreshold.toFixed(3)}, removed at true J ≤ t−0.1 ${m.removedWellBelowThreshold.toFixed(3)}, removal rate by edit rate ${JSON.stringify(m.recallByRate)}, true 3-gram Jaccard by edit rate ${JSON.stringify(m.jaccardByRate)}`);
    expect(m.removedOriginals).toBe(0);
    expect(m.precision).toBeGreaterThanOrEqual(0.98);
    expect(m.recallByRate['0%']).toBe(1);
    expect(m.recallByRate['1%']).toBeGreaterThanOrEqual(0.95);
    expect(m.recallByRate['5%']).toBeGreaterThanOrEqual(0.95);
    expect(m.recallByRate['10%']).toBeGreaterThanOrEqual(0.8);
    expect(m.recallByRate['30%']).toBeLessThanOrEqual(0.1);
    expect(m.recallAboveThreshold).toBeGreaterThanOrEqual(0.95);
    expect(m.removedWellBelowThreshold).toBeLessThanOrEqual(0.05);
  });
});
