/**
 * Training runs for scaling-law fits, read from CSV.
 *
 * Any CSV with a header row works: one column for the parameter count N, one for the loss,
 * and one for the training tokens D or the training compute C (FLOPs), or both. Missing
 * columns follow from C ≈ 6ND. Column names are matched case-insensitively, ignoring spaces,
 * underscores and punctuation, against common spellings (see COLUMN_ALIASES), or given
 * explicitly.
 *
 * TensorLM's own sweep format ("tensorlm-sweep") is exactly this header, in this order:
 *
 *     N,N_with_embeddings,D,C,loss
 *
 * - N: parameters excluding the token/position embedding tables (the N the law is fitted on
 *   by default; pass nColumn 'N_with_embeddings' to fit on the total instead),
 * - N_with_embeddings: all parameters,
 * - D: training tokens,
 * - C: training FLOPs (6·N·D, or a measured count),
 * - loss: final validation loss in nats per token.
 * One row per run; numbers in plain or scientific notation.
 */
import { parse } from 'csv-parse/sync';
import { readTextFile } from '../data/files.js';
import { escapeControls, truncateList, truncateMessage } from '../io/json.js';

/** A cell or column name for a message: quoted, control characters escaped, cut to 40 characters. */
function cellText(cell: string): string {
  const text = escapeControls(cell);
  return text.length > 40 ? `'${text.slice(0, 40)}…' (${cell.length} characters)` : `'${text}'`;
}
/** A cell that reads as a number, unquoted, cut to 40 characters (a 5-million-digit cell stays short). */
function numberText(cell: string): string {
  return cell.length > 40 ? `${cell.slice(0, 40)}… (${cell.length} characters)` : cell;
}
/** Column names for a message: at most eight, each cut. */
const columnList = (names: readonly string[]): string => truncateList(names.map(cellText), 8);

export interface Run {
  N: number;
  D: number;
  C: number;
  loss: number;
  /** 1-based line of the CSV the run came from (for messages and provenance). */
  line: number;
}

export type RunRole = 'N' | 'D' | 'C' | 'loss';

export const SWEEP_HEADER = ['N', 'N_with_embeddings', 'D', 'C', 'loss'] as const;

/** Spellings recognised per role, normalised (lower case, letters and digits only). */
export const COLUMN_ALIASES: Readonly<Record<RunRole, readonly string[]>> = Object.freeze({
  N: ['n', 'params', 'parameters', 'modelsize', 'nparams', 'numparams', 'parametercount'],
  D: ['d', 'tokens', 'trainingtokens', 'ntokens', 'numtokens', 'datasetsize'],
  C: ['c', 'flop', 'flops', 'trainingflop', 'trainingflops', 'compute'],
  loss: ['loss', 'finalloss', 'valloss', 'validationloss', 'evalloss'],
});

const FLAG: Record<RunRole, string> = { N: 'nColumn / --n-col', D: 'dColumn / --d-col', C: 'cColumn / --c-col', loss: 'lossColumn / --loss-col' };
const WHAT: Record<RunRole, string> = { N: 'parameter count N', D: 'training tokens D', C: 'training FLOPs C', loss: 'loss' };

export interface LoadRunsOptions {
  nColumn?: string;
  dColumn?: string;
  cColumn?: string;
  lossColumn?: string;
  /** Drop the k highest-loss runs before fitting (Epoch AI drop 5 of Chinchilla's). Default 0. */
  dropHighest?: number;
}

export interface RunsTable {
  /** Kept runs, in file order. */
  runs: Run[];
  /** Runs removed by dropHighest, highest loss first. */
  dropped: Run[];
  /** The header names used for each role; null where the value was derived. */
  columns: { N: string; D: string | null; C: string | null; loss: string };
  /** Which of D and C was computed from C ≈ 6ND, if either. */
  derived: 'D' | 'C' | null;
  format: 'tensorlm-sweep' | 'csv';
  source: string;
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function findColumn(header: readonly string[], role: RunRole, explicit: string | undefined, required: boolean): number | null {
  const list = columnList(header);
  if (explicit !== undefined) {
    let index = header.indexOf(explicit);
    if (index < 0) {
      // Tolerate case and spacing differences, but only when that is unambiguous.
      const matches = header.flatMap((h, i) => (normalise(h) === normalise(explicit) ? [i] : []));
      if (matches.length === 1) index = matches[0];
    }
    if (index < 0) throw new Error(`the ${WHAT[role]} column ${cellText(explicit)} (${FLAG[role]}) is not in the CSV; its columns are ${list}`);
    return index;
  }
  const matches = header.flatMap((h, i) => (COLUMN_ALIASES[role].includes(normalise(h)) ? [i] : []));
  if (matches.length > 1) {
    throw new Error(`several columns could be the ${WHAT[role]}: ${columnList(matches.map((i) => header[i]))}; choose one with ${FLAG[role]}`);
  }
  if (matches.length === 0) {
    if (!required) return null;
    throw new Error(`no ${WHAT[role]} column found (looked for ${COLUMN_ALIASES[role].join(', ')}); its columns are ${list}; name it with ${FLAG[role]}`);
  }
  return matches[0];
}

/** Parses CSV text; `source` names it in errors. */
/** Most runs (data lines) a runs CSV may hold: parsing stays well under a second. */
export const MAX_RUNS = 100_000;

export function parseRunsCsv(text: string, options: LoadRunsOptions = {}, source = 'CSV'): RunsTable {
  const dropHighest = options.dropHighest ?? 0;
  if (!Number.isInteger(dropHighest) || dropHighest < 0) throw new RangeError(`dropHighest must be a non-negative integer, got ${dropHighest}`);
  // Bounded work: counted before parsing (a line per run, and a header).
  let lines = 1;
  for (let i = text.indexOf('\n'); i !== -1 && lines <= MAX_RUNS + 1; i = text.indexOf('\n', i + 1)) lines++;
  if (lines > MAX_RUNS + 1) throw new Error(`${source} has more than ${MAX_RUNS.toLocaleString('en-US')} lines of runs; a runs CSV holds at most ${MAX_RUNS.toLocaleString('en-US')} (a scaling study has tens to thousands)`);
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { bom: true, info: true, skip_empty_lines: true, trim: true }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (error) {
    throw new Error(`cannot parse ${source}: ${truncateMessage(error instanceof Error ? error.message : String(error), 200)}`);
  }
  if (records.length === 0) throw new Error(`${source} is empty: expected a header row and one row per run`);
  const header = records[0].record;
  const seen = new Set<string>();
  for (const h of header) {
    if (h === '') throw new Error(`${source}: the header has an empty column name`);
    if (seen.has(h)) throw new Error(`${source}: the header names column ${cellText(h)} twice`);
    seen.add(h);
  }
  const format = header.length === SWEEP_HEADER.length && SWEEP_HEADER.every((h, i) => header[i] === h) ? 'tensorlm-sweep' : 'csv';
  const where = (e: Error) => new Error(`${source}: ${e.message}`);
  let iN: number, iLoss: number, iD: number | null, iC: number | null;
  try {
    iN = findColumn(header, 'N', options.nColumn, true) as number;
    iLoss = findColumn(header, 'loss', options.lossColumn, true) as number;
    iD = findColumn(header, 'D', options.dColumn, false);
    iC = findColumn(header, 'C', options.cColumn, false);
  } catch (error) {
    throw where(error as Error);
  }
  if (iD === null && iC === null) {
    throw new Error(`${source}: need a training-tokens (D) or a training-FLOPs (C) column, found neither among ${columnList(header)}; name one with --d-col or --c-col`);
  }
  const used = [iN, iLoss, iD, iC].filter((i): i is number => i !== null);
  if (new Set(used).size !== used.length) throw new Error(`${source}: one column was chosen for two roles (N, D, C, loss must be different columns)`);

  const runs: Run[] = [];
  for (let r = 1; r < records.length; r++) {
    const { record, info } = records[r];
    const line = info.lines;
    const value = (index: number, role: RunRole): number => {
      const cell = record[index];
      if (cell === '' || !NUMBER.test(cell)) {
        throw new Error(`${source} line ${line}: column ${cellText(header[index])} (${WHAT[role]}) must be a positive number, got ${cell === '' ? 'an empty cell' : cellText(cell)}`);
      }
      const v = Number(cell);
      if (!(v > 0) || !Number.isFinite(v)) throw new Error(`${source} line ${line}: column ${cellText(header[index])} (${WHAT[role]}) must be a finite positive number, got ${numberText(cell)}`);
      return v;
    };
    const N = value(iN, 'N');
    const loss = value(iLoss, 'loss');
    const D = iD !== null ? value(iD, 'D') : value(iC as number, 'C') / (6 * N);
    const C = iC !== null ? value(iC, 'C') : 6 * N * D;
    // A derived value can overflow to Infinity or underflow to 0 although its inputs are fine.
    if (!(D > 0) || !Number.isFinite(D)) throw new Error(`${source} line ${line}: D = C/(6N) = ${D} is not a finite positive number (C = ${numberText(record[iC as number])}, N = ${numberText(record[iN])})`);
    if (!(C > 0) || !Number.isFinite(C)) throw new Error(`${source} line ${line}: C = 6ND = ${C} is not a finite positive number (N = ${numberText(record[iN])}, D = ${numberText(record[iD as number])})`);
    runs.push({ N, D, C, loss, line });
  }
  if (runs.length === 0) throw new Error(`${source} has a header but no runs`);
  if (dropHighest >= runs.length) throw new RangeError(`dropHighest=${dropHighest} would drop all ${runs.length} runs of ${source}`);
  // Highest loss first; ties keep file order so the choice is reproducible.
  const order = runs.map((_, i) => i).sort((p, q) => runs[q].loss - runs[p].loss || p - q);
  const dropSet = new Set(order.slice(0, dropHighest));
  return {
    runs: runs.filter((_, i) => !dropSet.has(i)),
    dropped: order.slice(0, dropHighest).map((i) => runs[i]),
    columns: { N: header[iN], D: iD !== null ? header[iD] : null, C: iC !== null ? header[iC] : null, loss: header[iLoss] },
    derived: iD === null ? 'D' : iC === null ? 'C' : null,
    format,
    source,
  };
}

/** Reads and parses a runs CSV file (see the module comment for the accepted layouts). */
export function loadRunsCsv(path: string, options: LoadRunsOptions = {}): RunsTable {
  return parseRunsCsv(readTextFile(path, 'runs CSV'), options, path);
}
