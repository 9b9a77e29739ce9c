/**
 * Runs fuzz cases in worker processes: each case has a time limit (the worker's CPU time from the
 * moment it starts loading, with 4× that in wall time as a backstop) and a memory limit (the worker's V8 heap via --max-old-space-size, and its RSS,
 * polled, because typed arrays live outside the heap). A worker that exceeds either is killed
 * and replaced; the case is a `hang` or a `crash`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildCorpus, type Corpus } from './corpus.js';
import type { Format } from './mutators.js';
import { OUTCOMES, type CaseRequest, type CaseResult, type ChildMessage, type Outcome } from './protocol.js';

export interface FuzzOptions {
  formats: readonly Format[];
  cases: number;
  /** Fewer (or more) cases for some formats than `cases` (a long run of the slow formats). */
  casesFor?: Partial<Record<Format, number>>;
  seed: number;
  /** Per-case time limit (ms). Default 5000. */
  timeLimitMs?: number;
  /** Worker heap limit (MB). Default 1024. */
  heapMb?: number;
  /** Worker RSS limit (MB). Default 2048. */
  rssMb?: number;
  /** Worker processes. Default 2. */
  concurrency?: number;
  /** Where the seed corpus is built (default: a fresh temporary directory). */
  corpusDir?: string;
  /** Run only these case indices (to reproduce). */
  only?: readonly number[];
  onCase?: (r: CaseResult) => void;
}

export interface FormatReport {
  format: Format;
  cases: number;
  seconds: number;
  counts: Record<Outcome, number>;
  results: CaseResult[];
}

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** CPU seconds (user + system) the process has used, from /proc (0 where unavailable). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name; 100 ticks a second.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function rssMb(pid: number): number {
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * 4096) / 2 ** 20;
  } catch {
    return 0;
  }
}

class Worker {
  private child: ChildProcess | null = null;
  private ready: Promise<void> | null = null;
  private stderr = '';
  private readonly work: string;

  constructor(
    private readonly root: string,
    private readonly id: number,
    private readonly opts: Required<Pick<FuzzOptions, 'timeLimitMs' | 'heapMb' | 'rssMb'>>,
  ) {
    this.work = join(root, `worker-${id}`);
  }

  private spawn(): Promise<void> {
    mkdirSync(this.work, { recursive: true });
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = fork(CHILD, [], {
      execArgv: ['--import', TSX, `--max-old-space-size=${this.opts.heapMb}`],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env,
    });
    this.child = child;
    this.stderr = '';
    const keep = (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4000);
    };
    child.stderr?.on('data', keep);
    child.stdout?.on('data', () => {});
    return new Promise((resolve, reject) => {
      const onMessage = (msg: ChildMessage) => {
        if (msg.type === 'ready') {
          child.off('exit', onExit);
          child.off('message', onMessage);
          resolve();
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        child.off('message', onMessage);
        reject(new Error(`fuzz worker failed to start (exit ${code ?? signal}): ${this.stderr.trim().split('\n').slice(-8).join(' | ')}`));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  }

  private async ensure(): Promise<ChildProcess> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) this.ready = null;
    if (!this.ready) {
      let lastError: Error | null = null;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await this.spawn();
          lastError = null;
          break;
        } catch (error) {
          lastError = error as Error;
        }
      }
      if (lastError) throw lastError;
      this.ready = Promise.resolve();
    }
    await this.ready;
    return this.child as ChildProcess;
  }

  private kill(): void {
    const c = this.child;
    this.child = null;
    this.ready = null;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }

  async run(format: Format, seed: number, index: number, corpus: Corpus): Promise<CaseResult> {
    const child = await this.ensure();
    const req: CaseRequest = { type: 'case', format, seed, index, corpus, work: this.work };
    return new Promise<CaseResult>((resolve) => {
      let kind = '(not started)';
      let desc = '(the worker died before describing the mutation)';
      let started = 0;
      let startCpu = 0;
      let timer: NodeJS.Timeout | null = null;
      const t0 = performance.now();
      const finish = (r: Omit<CaseResult, 'format' | 'index' | 'kind' | 'desc'>, kill = false) => {
        if (timer) clearTimeout(timer);
        clearInterval(poll);
        clearTimeout(safety);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (kill) this.kill();
        resolve({ format, index, kind, desc, ...r });
      };
      const onMessage = (msg: ChildMessage) => {
        if (msg.type === 'started' && msg.index === index) {
          kind = msg.kind;
          desc = msg.desc;
          started = performance.now();
          startCpu = child.pid === undefined ? 0 : cpuSeconds(child.pid);
          // The wall-clock backstop: on a busy machine a case may wait for a core, so the limit
          // proper is on the worker's CPU time (checked in the poll below).
          timer = setTimeout(() => finish({ outcome: 'hang', message: `no result within ${(4 * this.opts.timeLimitMs) / 1000} s of wall time`, ms: performance.now() - started }, true), 4 * this.opts.timeLimitMs);
        } else if (msg.type === 'result' && msg.index === index) {
          finish({ outcome: msg.outcome, message: msg.message, note: msg.note, ms: msg.ms });
        } else if (msg.type === 'fatal') {
          finish({ outcome: 'crash', message: msg.message, ms: performance.now() - (started || t0) }, true);
        }
      };
      const onExit = (code: number | null, signal: string | null) => {
        const tail = this.stderr.trim().split('\n').filter((l) => /FATAL|Error|error|heap|memory|Abort/i.test(l)).slice(-3).join(' | ');
        const outcome: Outcome = started ? 'crash' : 'harness-error';
        finish({ outcome, message: `worker exited (${code ?? signal})${tail ? `: ${tail}` : ''}`, ms: performance.now() - (started || t0) });
        this.child = null;
        this.ready = null;
      };
      const poll = setInterval(() => {
        const pid = child.pid;
        if (pid === undefined) return;
        if (started && cpuSeconds(pid) - startCpu > this.opts.timeLimitMs / 1000) {
          finish({ outcome: 'hang', message: `no result within ${this.opts.timeLimitMs / 1000} s of CPU time`, ms: performance.now() - started }, true);
          return;
        }
        const mb = rssMb(pid);
        if (mb > this.opts.rssMb) finish({ outcome: 'crash', message: `worker RSS ${mb.toFixed(0)} MB exceeded the ${this.opts.rssMb} MB limit`, ms: performance.now() - (started || t0) }, true);
      }, 100);
      // Mutation and baseline are the harness's own work; a minute without a start is its failure.
      const safety = setTimeout(() => {
        if (!started) finish({ outcome: 'harness-error', message: 'the worker did not start the case within 60 s', ms: 60_000 }, true);
      }, 60_000);
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(req);
    });
  }

  close(): void {
    this.kill();
  }
}

function emptyCounts(): Record<Outcome, number> {
  return Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
}

/** Builds the corpus and runs `cases` cases of each format; returns one report per format. */
export async function runFuzz(options: FuzzOptions): Promise<FormatReport[]> {
  const root = mkdtempSync(join(tmpdir(), 'tensorlm-fuzz-'));
  const corpus = await buildCorpus(options.corpusDir ?? join(root, 'corpus'));
  const limits = { timeLimitMs: options.timeLimitMs ?? 5000, heapMb: options.heapMb ?? 1024, rssMb: options.rssMb ?? 2048 };
  const workers = Array.from({ length: Math.max(1, options.concurrency ?? 2) }, (_, i) => new Worker(root, i, limits));
  const reports: FormatReport[] = [];
  try {
    for (const format of options.formats) {
      const t0 = performance.now();
      const indices = options.only ?? Array.from({ length: options.casesFor?.[format] ?? options.cases }, (_, i) => i);
      const results: CaseResult[] = [];
      let next = 0;
      await Promise.all(
        workers.map(async (w) => {
          while (next < indices.length) {
            const index = indices[next++];
            const r = await w.run(format, options.seed, index, corpus);
            results.push(r);
            options.onCase?.(r);
          }
        }),
      );
      results.sort((a, b) => a.index - b.index);
      const counts = emptyCounts();
      for (const r of results) counts[r.outcome]++;
      reports.push({ format, cases: results.length, seconds: (performance.now() - t0) / 1000, counts, results });
    }
  } finally {
    for (const w of workers) w.close();
    rmSync(root, { recursive: true, force: true });
  }
  return reports;
}
