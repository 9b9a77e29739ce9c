/**
 * The attention view: a grid of small heatmaps, one per layer × head (rows: layers, columns:
 * heads), of the weights [query][key] for a short prompt; clicking one draws it large with the
 * tokens on both axes and a tooltip of the weight under the pointer.
 */
import type { AttentionResult } from './api.js';

/** Viridis, sampled: weight 0 → dark purple, 1 → yellow. */
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 74, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [109, 205, 89],
  [180, 222, 44],
  [253, 231, 37],
];

/** Room right of the heatmap for the color scale. */
const COLORBAR_SPACE = 64;

export function colorOf(w: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, Number.isFinite(w) ? w : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const f = t - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

/** Whitespace made visible, so a token label is never blank. */
export function tokenLabel(t: string): string {
  const shown = t.replace(/ /g, '␣').replace(/\n/g, '⏎').replace(/\t/g, '⇥');
  return shown.length > 12 ? shown.slice(0, 11) + '…' : shown || '∅';
}

/** Paints a T × T matrix into a canvas of T × T pixels (CSS scales it up, pixelated). */
function paintSmall(canvas: HTMLCanvasElement, m: number[][]): void {
  const n = m.length;
  canvas.width = n;
  canvas.height = n;
  const ctx = canvas.getContext('2d');
  if (!ctx || n === 0) return;
  const img = ctx.createImageData(n, n);
  for (let q = 0; q < n; q++) {
    for (let k = 0; k < n; k++) {
      const [r, g, b] = colorOf(m[q]?.[k] ?? 0);
      const o = (q * n + k) * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

export class AttentionView {
  private result: AttentionResult | null = null;
  private selected: { layer: number; head: number } | null = null;

  constructor(
    private readonly grid: HTMLElement,
    private readonly detail: HTMLElement,
    private readonly detailCanvas: HTMLCanvasElement,
    private readonly detailTitle: HTMLElement,
    private readonly tooltip: HTMLElement,
  ) {
    detailCanvas.addEventListener('mousemove', (e) => this.hover(e));
    detailCanvas.addEventListener('mouseleave', () => (this.tooltip.hidden = true));
  }

  show(result: AttentionResult): void {
    this.result = result;
    this.grid.replaceChildren();
    this.grid.style.setProperty('--heads', String(result.nHeads));
    for (let layer = 0; layer < result.nLayers; layer++) {
      for (let head = 0; head < result.nHeads; head++) {
        const cell = document.createElement('button');
        cell.type = 'button';
        cell.className = 'attention-cell';
        cell.dataset.testid = 'attention-cell';
        cell.dataset.layer = String(layer);
        cell.dataset.head = String(head);
        cell.title = `layer ${layer}, head ${head}: click to enlarge`;
        const canvas = document.createElement('canvas');
        paintSmall(canvas, result.weights[layer]?.[head] ?? []);
        const label = document.createElement('span');
        label.textContent = `L${layer} H${head}`;
        cell.append(canvas, label);
        cell.addEventListener('click', () => this.select(layer, head));
        this.grid.append(cell);
      }
    }
    this.grid.dataset.cells = String(result.nLayers * result.nHeads);
    this.select(0, 0);
  }

  clear(): void {
    this.result = null;
    this.grid.replaceChildren();
    this.grid.dataset.cells = '0';
    this.detail.hidden = true;
  }

  select(layer: number, head: number): void {
    if (!this.result) return;
    this.selected = { layer, head };
    for (const cell of this.grid.querySelectorAll<HTMLElement>('.attention-cell')) {
      cell.classList.toggle('selected', cell.dataset.layer === String(layer) && cell.dataset.head === String(head));
    }
    this.detail.hidden = false;
    this.detailTitle.textContent = `Layer ${layer}, head ${head} — rows: query tokens, columns: key tokens`;
    this.drawDetail();
  }

  private geometry(): { n: number; cell: number; left: number; top: number } {
    const n = this.result?.tokens.length ?? 0;
    const labels = (this.result?.tokens ?? []).map(tokenLabel);
    const longest = labels.reduce((m, l) => Math.max(m, l.length), 1);
    // Whole pixels, so neighbouring cells meet without seams.
    const margin = Math.round(Math.min(110, 14 + longest * 7.5));
    const cell = Math.max(8, Math.min(34, Math.floor(560 / Math.max(1, n))));
    return { n, cell, left: margin, top: margin };
  }

  private drawDetail(): void {
    if (!this.result || !this.selected) return;
    const { layer, head } = this.selected;
    const m = this.result.weights[layer]?.[head] ?? [];
    const { n, cell, left, top } = this.geometry();
    const labels = this.result.tokens.map(tokenLabel);
    const dpr = window.devicePixelRatio || 1;
    const width = left + n * cell + COLORBAR_SPACE;
    const height = top + n * cell + 8;
    const canvas = this.detailCanvas;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    // Where the cells are, in CSS pixels (for tests and tools).
    Object.assign(canvas.dataset, { left: String(left), top: String(top), cell: String(cell), n: String(n) });
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    for (let q = 0; q < n; q++) {
      for (let k = 0; k < n; k++) {
        const [r, g, b] = colorOf(m[q]?.[k] ?? 0);
        ctx.fillStyle = `rgb(${r},${g},${b})`;
        ctx.fillRect(left + k * cell, top + q * cell, cell, cell);
      }
    }
    const fontSize = Math.max(9, Math.min(12, cell - 2));
    ctx.font = `${fontSize}px ui-monospace, SFMono-Regular, Menlo, monospace`;
    ctx.fillStyle = '#334155';
    // Query tokens down the left, key tokens along the top (rotated).
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let q = 0; q < n; q++) ctx.fillText(labels[q], left - 4, top + q * cell + cell / 2);
    if (labels.every((l) => l.length * 7 <= cell)) {
      // Short tokens (characters) fit upright above their columns.
      ctx.textAlign = 'center';
      ctx.textBaseline = 'bottom';
      for (let k = 0; k < n; k++) ctx.fillText(labels[k], left + k * cell + cell / 2, top - 4);
    } else {
      ctx.textAlign = 'left';
      for (let k = 0; k < n; k++) {
        ctx.save();
        ctx.translate(left + k * cell + cell / 2, top - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.fillText(labels[k], 0, 0);
        ctx.restore();
      }
    }
    this.drawColorbar(ctx, left + n * cell + 16, top, Math.max(60, n * cell));
  }

  /** The color scale, 1 at the top and 0 at the bottom. */
  private drawColorbar(ctx: CanvasRenderingContext2D, x: number, y: number, height: number): void {
    const steps = 64;
    for (let i = 0; i < steps; i++) {
      const [r, g, b] = colorOf(1 - i / (steps - 1));
      ctx.fillStyle = `rgb(${r},${g},${b})`;
      ctx.fillRect(x, Math.floor(y + (i * height) / steps), 12, Math.ceil(height / steps) + 1);
    }
    ctx.fillStyle = '#334155';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillText('1', x + 16, y);
    ctx.textBaseline = 'bottom';
    ctx.fillText('0', x + 16, y + height);
    ctx.textBaseline = 'middle';
    ctx.fillText('0.5', x + 16, y + height / 2);
  }

  private hover(e: MouseEvent): void {
    if (!this.result || !this.selected) return;
    const { n, cell, left, top } = this.geometry();
    const rect = this.detailCanvas.getBoundingClientRect();
    const k = Math.floor((e.clientX - rect.left - left) / cell);
    const q = Math.floor((e.clientY - rect.top - top) / cell);
    if (q < 0 || k < 0 || q >= n || k >= n) {
      this.tooltip.hidden = true;
      return;
    }
    const { layer, head } = this.selected;
    const w = this.result.weights[layer]?.[head]?.[q]?.[k] ?? 0;
    const t = this.result.tokens;
    this.tooltip.textContent = `query ${q} “${tokenLabel(t[q])}” → key ${k} “${tokenLabel(t[k])}”: ${w.toFixed(4)}`;
    this.tooltip.hidden = false;
    // position: fixed, so the scrolling detail box does not clip it.
    this.tooltip.style.left = `${Math.min(e.clientX + 14, window.innerWidth - this.tooltip.offsetWidth - 8)}px`;
    this.tooltip.style.top = `${e.clientY + 14}px`;
  }
}
