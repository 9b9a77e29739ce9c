/** Outcome tables (console and Markdown) and the examples engineers need to fix each defect class. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { FormatReport } from './runner.js';
import { CLEAN_OUTCOMES, OUTCOMES, type CaseResult, type Outcome } from './protocol.js';

const DEFECTS: readonly Outcome[] = OUTCOMES.filter((o) => !CLEAN_OUTCOMES.includes(o));

function clip(s: string | undefined, max: number): string {
  if (s === undefined) return '';
  const one = s.replace(/[\r\n]+/g, ' ⏎ ').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

/** The table: one row per format, one column per outcome. */
export function outcomeTable(reports: readonly FormatReport[], markdown: boolean): string {
  const head = ['format', 'cases', 'seconds', ...OUTCOMES];
  const rows = reports.map((r) => [r.format, String(r.cases), r.seconds.toFixed(1), ...OUTCOMES.map((o) => String(r.counts[o]))]);
  if (markdown) {
    return [`| ${head.join(' | ')} |`, `| ${head.map((h, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** Defect cases grouped by (outcome, mutator kind), most frequent first. */
export function defectGroups(report: FormatReport): { outcome: Outcome; kind: string; cases: CaseResult[] }[] {
  const groups = new Map<string, { outcome: Outcome; kind: string; cases: CaseResult[] }>();
  for (const r of report.results) {
    if (!DEFECTS.includes(r.outcome)) continue;
    const key = `${r.outcome}\u0000${r.kind}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { outcome: r.outcome, kind: r.kind, cases: [] }));
    g.cases.push(r);
  }
  return [...groups.values()].sort((a, b) => DEFECTS.indexOf(a.outcome) - DEFECTS.indexOf(b.outcome) || b.cases.length - a.cases.length);
}

/** One line per example: the case (for --only), the mutation, and the message or change. */
export function describeCase(r: CaseResult, max = 220): string {
  const detail = r.outcome === 'load-changed' ? `changed: ${r.note ?? ''}` : r.outcome === 'error-unclear' ? `${r.note}: ${r.message ?? ''}` : (r.message ?? '');
  // The worker's scratch path differs every run; <case> keeps reports comparable.
  return `#${r.index} ${r.desc} → ${clip(detail.replace(/\/[^\s'"]*?tensorlm-fuzz-[^/]+\/worker-\d+\/case/g, '<case>'), max)}`;
}

export function examplesText(reports: readonly FormatReport[], perGroup = 2, markdown = false): string {
  const out: string[] = [];
  for (const report of reports) {
    const groups = defectGroups(report);
    if (groups.length === 0) continue;
    out.push(markdown ? `\n#### ${report.format}\n` : `\n${report.format}: defects by outcome and mutator`);
    for (const g of groups) {
      out.push(markdown ? `- **${g.outcome}** × ${g.cases.length}, \`${g.kind}\`` : `  ${g.outcome} × ${g.cases.length}  [${g.kind}]`);
      for (const c of g.cases.slice(0, perGroup)) out.push(markdown ? `  - \`${clip(describeCase(c), 260).replace(/`/g, "'")}\`` : `      ${describeCase(c)}`);
    }
  }
  return out.join('\n');
}

const START = '<!-- fuzz-results:start -->';
const END = '<!-- fuzz-results:end -->';

/** Writes the table and examples between the markers of `path` (appending the markers if missing). */
export function writeReport(path: string, reports: readonly FormatReport[], meta: { seed: number; cases: number; command: string; date: string }): void {
  const body = [
    START,
    '',
    `Last run: ${meta.date}, \`${meta.command}\` (seed ${meta.seed}, ${meta.cases} cases per format unless the table says fewer).`,
    '',
    outcomeTable(reports, true),
    '',
    '<details><summary>Defects by outcome and mutator (two examples each; reproduce one with <code>--format F --seed S --only N</code>)</summary>',
    '',
    examplesText(reports, 2, true) || '(none)',
    '',
    '</details>',
    '',
    END,
  ].join('\n');
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  const next = a >= 0 && b > a ? text.slice(0, a) + body + text.slice(b + END.length) : `${text.trimEnd()}\n\n${body}\n`;
  writeFileSync(path, next);
}
