/**
 * `prepare`: raw documents in, clean deduplicated documents out, one JSONL line each.
 *
 *   read → HTML to text → normalise → language → quality rules → exact dedup → near dedup → write
 *
 * HTML is converted before normalisation so that the text html-to-text produces is normalised like
 * any other. Every removed document is counted once, at the first stage that removed it; lines that
 * line rules removed are counted separately, in lines and bytes. The output is written to a
 * temporary file next to it and renamed into place at the end, so a failed run leaves no partial
 * documents.jsonl (and an earlier one untouched).
 */
import { open, rename } from 'node:fs/promises';
import { removeQuietly, tempPathFor } from '../files.js';
import { ExactDeduplicator } from './dedup.js';
import { applyQualityRules, DEFAULT_QUALITY_RULES, QUALITY_RULE_NAMES, type QualityRuleName, type QualityRules } from './filters.js';
import { htmlToPlainText } from './html.js';
import { detectLanguage } from './language.js';
import { MinHasher, NearDuplicateIndex } from './minhash.js';
import { normalizeText, type NormalizeOptions } from './normalize.js';
import { expandInputs, readDocuments, type SourceDocument, type SourceOptions } from './sources.js';

/** 'near' also removes exact duplicates first (cheaper, and exact). */
export type DedupMode = 'exact' | 'near' | 'none';

export interface CleanOptions {
  normalize?: NormalizeOptions;
  /** ISO 639-3 codes to keep (e.g. ['eng']); undefined or empty: no language filter. */
  languages?: readonly string[];
  /** Quality rules; default DEFAULT_QUALITY_RULES. */
  rules?: QualityRules;
  /** Default 'near'. */
  dedup?: DedupMode;
  /** Near dedup: estimated Jaccard similarity at or above which a document is dropped; default 0.8. */
  jaccard?: number;
  /** Near dedup: MinHash signature length; default 128. */
  numPerm?: number;
  /** Near dedup: words per shingle; default 5. */
  shingleSize?: number;
  /** Near dedup: seed of the MinHash functions; default 1. */
  seed?: number;
}

/** The stages a document can be removed at, in pipeline order. */
export type RemovalStage = 'empty' | 'language' | QualityRuleName | 'exact-duplicate' | 'near-duplicate';

export type CleanVerdict = { kept: true; text: string } | { kept: false; removedBy: RemovalStage };

export interface StageCount {
  documents: number;
  /** UTF-8 bytes of the removed documents as read (HTML included for HTML sources). */
  bytes: number;
}

export interface DedupSettings {
  mode: DedupMode;
  jaccard?: number;
  numPerm?: number;
  bands?: number;
  rows?: number;
  shingleSize?: number;
  seed?: number;
}

/** The counts a DocumentCleaner keeps. */
export interface CleanReport {
  input: StageCount;
  kept: StageCount;
  /** Every stage that ran, in pipeline order, zeros included. */
  removed: Partial<Record<RemovalStage, StageCount>>;
  /** Lines the line rules removed from documents that were kept or removed later. */
  linesRemoved: Partial<Record<QualityRuleName, { lines: number; bytes: number }>>;
  /** Documents per detected language (only with a language filter). */
  languages?: Record<string, number>;
  dedup: DedupSettings;
  rulesEnabled: QualityRuleName[];
}

function checkDedupOptions(options: CleanOptions): void {
  const jaccard = options.jaccard ?? 0.8;
  if (!(jaccard > 0 && jaccard < 1)) throw new Error(`jaccard threshold must be in (0, 1), got ${jaccard}`);
  const numPerm = options.numPerm ?? 128;
  if (!Number.isInteger(numPerm) || numPerm < 1 || numPerm > 4096) throw new Error(`num-perm must be an integer in [1, 4096], got ${numPerm}`);
  const dedup = options.dedup ?? 'near';
  if (dedup !== 'near' && dedup !== 'exact' && dedup !== 'none') throw new Error(`dedup must be 'exact', 'near' or 'none', got '${String(dedup)}'`);
}

/** The stateful middle of the pipeline: judges documents one at a time, in order, and counts. */
export class DocumentCleaner {
  private readonly normalizeOptions: NormalizeOptions;
  private readonly languages: ReadonlySet<string> | null;
  private readonly rules: QualityRules;
  private readonly exact: ExactDeduplicator | null;
  private readonly hasher: MinHasher | null;
  private readonly near: NearDuplicateIndex | null;
  private readonly counts: CleanReport;

  constructor(options: CleanOptions = {}) {
    checkDedupOptions(options);
    this.normalizeOptions = options.normalize ?? {};
    this.languages = options.languages && options.languages.length > 0 ? new Set(options.languages) : null;
    this.rules = options.rules ?? (DEFAULT_QUALITY_RULES as QualityRules);
    const mode = options.dedup ?? 'near';
    this.exact = mode === 'none' ? null : new ExactDeduplicator();
    if (mode === 'near') {
      const numPerm = options.numPerm ?? 128;
      this.hasher = new MinHasher({ numPerm, seed: options.seed ?? 1, shingleSize: options.shingleSize ?? 5 });
      this.near = new NearDuplicateIndex({ numPerm, threshold: options.jaccard ?? 0.8 });
    } else {
      this.hasher = null;
      this.near = null;
    }
    const rulesEnabled = QUALITY_RULE_NAMES.filter((name) => this.rules[name].enabled);
    const stages: RemovalStage[] = ['empty'];
    if (this.languages) stages.push('language');
    stages.push(...rulesEnabled);
    if (this.exact) stages.push('exact-duplicate');
    if (this.near) stages.push('near-duplicate');
    const dedup: DedupSettings =
      this.near && this.hasher
        ? { mode, jaccard: this.near.threshold, numPerm: this.near.numPerm, bands: this.near.bands, rows: this.near.rows, shingleSize: this.hasher.shingleOptions.shingleSize, seed: this.hasher.seed }
        : { mode };
    this.counts = {
      input: { documents: 0, bytes: 0 },
      kept: { documents: 0, bytes: 0 },
      removed: Object.fromEntries(stages.map((stage) => [stage, { documents: 0, bytes: 0 }])),
      linesRemoved: {},
      ...(this.languages ? { languages: {} } : {}),
      dedup,
      rulesEnabled,
    };
  }

  /** A copy of the counts so far. */
  get report(): CleanReport {
    return structuredClone(this.counts);
  }

  private remove(stage: RemovalStage, bytes: number): CleanVerdict {
    const count = this.counts.removed[stage];
    if (count) {
      count.documents++;
      count.bytes += bytes;
    }
    return { kept: false, removedBy: stage };
  }

  /** Judges one document; a kept one is remembered for deduplication of the ones after it. */
  clean(document: Pick<SourceDocument, 'text' | 'html'>): CleanVerdict {
    const rawBytes = Buffer.byteLength(document.text, 'utf8');
    this.counts.input.documents++;
    this.counts.input.bytes += rawBytes;

    let text = normalizeText(document.html ? htmlToPlainText(document.text) : document.text, this.normalizeOptions);
    if (text.length === 0) return this.remove('empty', rawBytes);

    if (this.languages) {
      const language = detectLanguage(text);
      const languages = this.counts.languages as Record<string, number>;
      languages[language] = (languages[language] ?? 0) + 1;
      if (!this.languages.has(language)) return this.remove('language', rawBytes);
    }

    const verdict = applyQualityRules(text, this.rules);
    for (const [rule, removed] of Object.entries(verdict.linesRemoved) as [QualityRuleName, { lines: number; bytes: number }][]) {
      const total = (this.counts.linesRemoved[rule] ??= { lines: 0, bytes: 0 });
      total.lines += removed.lines;
      total.bytes += removed.bytes;
    }
    if (verdict.rejectedBy) return this.remove(verdict.rejectedBy, rawBytes);
    text = verdict.text;

    if (this.exact?.isDuplicate(text)) return this.remove('exact-duplicate', rawBytes);
    if (this.near && this.hasher) {
      const signature = this.hasher.signature(text);
      if (this.near.findDuplicate(signature)) return this.remove('near-duplicate', rawBytes);
      this.near.add(signature);
    }

    this.counts.kept.documents++;
    this.counts.kept.bytes += Buffer.byteLength(text, 'utf8');
    return { kept: true, text };
  }
}

export interface PrepareOptions extends CleanOptions, SourceOptions {
  /** Files, directories and globs (sources.ts). */
  inputs: readonly string[];
  /** The JSONL file to write, e.g. out/documents.jsonl. */
  output: string;
  /** Called every `progressEvery` documents read (default 10,000) with the counts so far. */
  onProgress?: (report: CleanReport) => void;
  progressEvery?: number;
}

export interface PrepareReport extends CleanReport {
  files: number;
  output: string;
  seconds: number;
}

/** Buffers lines and writes them to a temporary file; `commit` renames it into place. */
class AtomicLineWriter {
  private chunks: string[] = [];
  private buffered = 0;

  private constructor(
    private readonly handle: import('node:fs/promises').FileHandle,
    private readonly tempPath: string,
    private readonly path: string,
  ) {}

  static async open(path: string): Promise<AtomicLineWriter> {
    const tempPath = tempPathFor(path);
    return new AtomicLineWriter(await open(tempPath, 'wx'), tempPath, path);
  }

  async write(line: string): Promise<void> {
    this.chunks.push(line);
    this.buffered += line.length;
    // About 1 MiB per write: few system calls, bounded memory.
    if (this.buffered >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.chunks.length === 0) return;
    const data = this.chunks.join('');
    this.chunks = [];
    this.buffered = 0;
    await this.handle.write(data, null, 'utf8');
  }

  async commit(): Promise<void> {
    await this.flush();
    await this.handle.close();
    await rename(this.tempPath, this.path);
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    removeQuietly(this.tempPath);
  }
}

/** Runs the whole pipeline over `inputs` and writes the kept documents to `output` as JSONL. */
export async function prepare(options: PrepareOptions): Promise<PrepareReport> {
  const start = performance.now();
  const files = await expandInputs(options.inputs);
  const cleaner = new DocumentCleaner(options);
  const every = options.progressEvery ?? 10_000;
  const writer = await AtomicLineWriter.open(options.output);
  try {
    let read = 0;
    for await (const document of readDocuments(files, options)) {
      const verdict = cleaner.clean(document);
      if (verdict.kept) await writer.write(JSON.stringify({ text: verdict.text, source: document.source }) + '\n');
      if (options.onProgress && ++read % every === 0) options.onProgress(cleaner.report);
    }
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return { ...cleaner.report, files: files.length, output: options.output, seconds: (performance.now() - start) / 1000 };
}
