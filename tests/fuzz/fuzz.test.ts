/**
 * Issue #20's bounded fuzz run: a fixed number of seeded mutations of every file format TensorLM
 * reads (safetensors checkpoints, char and byte-level BPE tokenizer JSON, a run's config.json, the
 * scaling CSV), each loaded in a worker process with a time and memory limit. Every outcome must
 * be a clear one-line error naming the file or a load equal to the seed's (for CSV: or exactly
 * what the edited text states). The long run is `npm run fuzz -- --cases 10000`
 * (docs/reliability.md).
 *
 * FUZZ_CASES (default 150 per format) and FUZZ_SEED (default 1) change the run.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FORMATS, type Format } from './lib/mutators.js';
import { OUTCOMES, CLEAN_OUTCOMES, type Outcome } from './lib/protocol.js';
import { defectGroups, describeCase, outcomeTable } from './lib/report.js';
import { runFuzz, type FormatReport } from './lib/runner.js';

const CASES = Number(process.env.FUZZ_CASES ?? 150);
const SEED = Number(process.env.FUZZ_SEED ?? 1);

let reports: FormatReport[] = [];

beforeAll(async () => {
  reports = await runFuzz({ formats: FORMATS, cases: CASES, seed: SEED, timeLimitMs: 5000, concurrency: 2 });
  // The table in the test output, for whoever reads the log.
  console.log(`fuzz (seed ${SEED}, ${CASES} cases per format)\n${outcomeTable(reports, false)}`);
}, 300_000);

/** Up to five examples of one defect outcome, one line each. */
function examples(report: FormatReport, outcome: Outcome): string {
  const groups = defectGroups(report).filter((g) => g.outcome === outcome);
  const lines = groups.flatMap((g) => [`  [${g.kind}] × ${g.cases.length}`, ...g.cases.slice(0, 2).map((c) => `    ${describeCase(c, 200)}`)]);
  return lines.slice(0, 15).join('\n');
}

describe('fuzz: every mutated file is a clear error or an equivalent load (issue #20)', () => {
  it.each(FORMATS)('%s', (format: Format) => {
    const report = reports.find((r) => r.format === format);
    expect(report, `no fuzz report for ${format}`).toBeDefined();
    const r = report as FormatReport;
    expect(r.cases).toBe(CASES);
    for (const outcome of OUTCOMES) {
      if (CLEAN_OUTCOMES.includes(outcome)) continue;
      // Soft: one failure lists every defect outcome of the format, each with examples
      // (`npm run fuzz -- --format F --seed S --only N` reproduces a case).
      expect.soft(r.counts[outcome], `${format}: ${r.counts[outcome]} × ${outcome} of ${r.cases} (seed ${SEED})\n${examples(r, outcome)}`).toBe(0);
    }
  });
});
