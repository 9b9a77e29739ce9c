/** Readable printing, PyTorch-like: `tensor([[1.0000, 2.0000], …], requiresGrad=true)`. */
import type { Tensor } from './tensor.js';

const EDGE = 3;
const SUMMARIZE_ABOVE = 1000;

function formatNumber(v: number, dtype: string, decimals: number, scientific: boolean): string {
  if (dtype === 'bool') return v !== 0 ? 'true' : 'false';
  if (dtype === 'int32') return String(v);
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  return scientific ? v.toExponential(4) : v.toFixed(decimals);
}

export function formatTensor(t: Tensor): string {
  const flat = t.toTypedArray();
  const summarize = t.size > SUMMARIZE_ABOVE;
  let maxAbs = 0;
  let minAbs = Infinity;
  for (const v of flat) {
    const a = Math.abs(v);
    if (Number.isFinite(a)) {
      maxAbs = Math.max(maxAbs, a);
      if (a > 0) minAbs = Math.min(minAbs, a);
    }
  }
  const scientific = t.dtype === 'float32' && (maxAbs >= 1e8 || (minAbs < 1e-4 && minAbs !== Infinity));
  const cells = Array.from(flat, (v) => formatNumber(v, t.dtype, 4, scientific));
  const width = cells.reduce((w, c) => Math.max(w, c.length), 0);
  const strides: number[] = [];
  let s = 1;
  for (let d = t.ndim - 1; d >= 0; d--) {
    strides[d] = s;
    s *= t.shape[d];
  }
  const render = (dim: number, start: number, indent: string): string => {
    if (dim === t.ndim) return cells[start].padStart(width);
    const n = t.shape[dim];
    const parts: string[] = [];
    const pick = summarize && n > 2 * EDGE ? [...range(0, EDGE), -1, ...range(n - EDGE, n)] : range(0, n);
    for (const i of pick) parts.push(i < 0 ? '...' : render(dim + 1, start + i * strides[dim], indent + ' '));
    const sep = dim === t.ndim - 1 ? ', ' : ',' + '\n'.repeat(t.ndim - dim - 1) + indent + ' ';
    return '[' + parts.join(sep) + ']';
  };
  const body = t.ndim === 0 ? cells[0] : render(0, 0, '       ');
  const extras: string[] = [];
  if (t.dtype !== 'float32') extras.push(`dtype=${t.dtype}`);
  if (t.gradFn) extras.push(`gradFn=<${t.gradFn.name}>`);
  else if (t.requiresGrad) extras.push('requiresGrad=true');
  if (summarize) extras.push(`shape=[${t.shape.join(', ')}]`);
  return `tensor(${body}${extras.length ? ', ' + extras.join(', ') : ''})`;
}

function range(a: number, b: number): number[] {
  const out: number[] = [];
  for (let i = a; i < b; i++) out.push(i);
  return out;
}
