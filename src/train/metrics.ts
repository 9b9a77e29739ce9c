/** Training metrics as JSON lines (one object per line), appended as training goes. */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface TrainRecord {
  kind: 'train';
  step: number;
  tokens: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export interface EvalRecord {
  kind: 'eval';
  step: number;
  tokens: number;
  trainLoss: number;
  valLoss: number;
  elapsedSeconds: number;
  sample?: string;
  /** A stage's further figures, e.g. held-out exact-match accuracy per task. */
  metrics?: Record<string, number>;
}

export type MetricRecord = TrainRecord | EvalRecord;

export class MetricsLog {
  constructor(readonly path: string) {}

  append(record: MetricRecord): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }

  /** Every record; a torn last line (a run killed mid-write) is ignored. */
  read(): MetricRecord[] {
    return readMetrics(this.path);
  }

  /** Drops records past `step` — a resumed run rewrites the part after its checkpoint. */
  truncateAfter(step: number): void {
    const kept = this.read().filter((r) => r.step <= step);
    writeFileSync(this.path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

export function readMetrics(path: string): MetricRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as MetricRecord);
    } catch {
      // a partially written final line
    }
  }
  return out;
}
