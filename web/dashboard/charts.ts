/**
 * The metric charts: one Chart.js line chart per quantity, overlaying the selected runs (one color
 * per run; train solid, validation dashed with points). Live records are pushed into the existing
 * datasets and drawn with update('none'): the Chart instances are created once.
 */
import {
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Title,
  Tooltip,
  type ChartDataset,
  type ScatterDataPoint,
} from 'chart.js';
import type { MetricRecord } from './api.js';

Chart.register(LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Legend, Tooltip, Title);

export type XAxis = 'step' | 'tokens';

/** One line per run: which records it takes and which number it plots. */
export interface SeriesSpec {
  id: string;
  /** Suffix after the run name in the legend ('' for none). */
  label: string;
  value(r: MetricRecord): number | null;
  dashed?: boolean;
  points?: boolean;
}

export interface RunSeries {
  name: string;
  color: string;
  records: readonly MetricRecord[];
  focused: boolean;
}

type LineDataset = ChartDataset<'line', ScatterDataPoint[]> & { run: string; series: string };

export function formatCount(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(4)}`;
}

export function withAlpha(color: string, alpha: number): string {
  // Colors are '#rrggbb'.
  const n = parseInt(color.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export class MetricChart {
  readonly chart: Chart<'line', ScatterDataPoint[]>;
  private x: XAxis = 'step';

  constructor(
    private readonly container: HTMLElement,
    private readonly specs: SeriesSpec[],
    options: { yTitle: string; yFormat?: (v: number) => string },
  ) {
    const canvas = document.createElement('canvas');
    container.append(canvas);
    this.chart = new Chart(canvas, {
      type: 'line',
      data: { datasets: [] },
      options: {
        parsing: false,
        normalized: true,
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        scales: {
          x: { type: 'linear', title: { display: true, text: 'step' }, ticks: { callback: (v) => formatCount(Number(v)) } },
          y: { type: 'linear', title: { display: true, text: options.yTitle }, ticks: options.yFormat ? { callback: (v) => options.yFormat!(Number(v)) } : {} },
        },
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 14, boxHeight: 2, usePointStyle: false, font: { size: 11 } } },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? `${this.x} ${formatCount(items[0].parsed.x ?? 0)}` : ''),
              label: (item) => {
                const v = item.parsed.y ?? 0;
                return ` ${item.dataset.label}: ${options.yFormat ? options.yFormat(v) : v.toFixed(4)}`;
              },
            },
          },
        },
      },
    });
  }

  /** Total points drawn (all datasets); mirrored on the container's data-points attribute. */
  get points(): number {
    return this.chart.data.datasets.reduce((s, d) => s + d.data.length, 0);
  }

  private pointOf(spec: SeriesSpec, r: MetricRecord): ScatterDataPoint | null {
    const y = spec.value(r);
    if (y === null || !Number.isFinite(y)) return null;
    return { x: this.x === 'step' ? r.step : r.tokens, y };
  }

  private datasetOf(run: RunSeries, spec: SeriesSpec): LineDataset {
    const data: ScatterDataPoint[] = [];
    for (const r of run.records) {
      const p = this.pointOf(spec, r);
      if (p) data.push(p);
    }
    return {
      run: run.name,
      series: spec.id,
      label: spec.label ? `${run.name} ${spec.label}` : run.name,
      data,
      borderColor: run.focused ? run.color : withAlpha(run.color, 0.85),
      backgroundColor: run.color,
      borderWidth: run.focused ? 2.2 : 1.4,
      borderDash: spec.dashed ? [6, 4] : [],
      pointRadius: spec.points ? 2.5 : 0,
      pointHoverRadius: 4,
      tension: 0,
      spanGaps: true,
    };
  }

  /** Replaces every dataset (selection, focus or x-axis changed, or a snapshot arrived). */
  setRuns(runs: RunSeries[]): void {
    this.chart.data.datasets = runs.flatMap((run) => this.specs.map((spec) => this.datasetOf(run, spec)));
    this.redraw();
  }

  /** Appends new records of one run to its existing datasets. */
  append(run: string, records: readonly MetricRecord[]): void {
    for (const ds of this.chart.data.datasets as LineDataset[]) {
      if (ds.run !== run) continue;
      const spec = this.specs.find((s) => s.id === ds.series);
      if (!spec) continue;
      for (const r of records) {
        const p = this.pointOf(spec, r);
        if (p) ds.data.push(p);
      }
    }
    this.redraw();
  }

  setXAxis(x: XAxis, runs: RunSeries[]): void {
    this.x = x;
    const scale = this.chart.options.scales?.x;
    if (scale?.title) scale.title.text = x === 'step' ? 'step' : 'tokens';
    this.setRuns(runs);
  }

  setLogY(log: boolean): void {
    const y = this.chart.options.scales?.y;
    if (y) y.type = log ? 'logarithmic' : 'linear';
    this.redraw();
  }

  private redraw(): void {
    this.chart.update('none');
    this.container.dataset.points = String(this.points);
    this.container.dataset.datasets = String(this.chart.data.datasets.length);
  }
}
