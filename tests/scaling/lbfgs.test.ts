/** The hand-written L-BFGS on textbook problems with known minima, and its argument checks. */
import { describe, expect, it } from 'vitest';
import { lbfgs, type Objective } from '../../src/scaling/lbfgs.js';

/** Extended Rosenbrock: Σ 100 (x_{2i} − x_{2i−1}²)² + (1 − x_{2i−1})², minimum 0 at all ones. */
const rosenbrock: Objective = (x, g) => {
  let f = 0;
  g.fill(0);
  for (let i = 0; i < x.length; i += 2) {
    const t = x[i + 1] - x[i] * x[i];
    const u = 1 - x[i];
    f += 100 * t * t + u * u;
    g[i] += -400 * x[i] * t - 2 * u;
    g[i + 1] += 200 * t;
  }
  return f;
};

/** ½ Σ d_i (x_i − c_i)², condition number max d / min d. */
function quadratic(d: number[], c: number[]): Objective {
  return (x, g) => {
    let f = 0;
    for (let i = 0; i < x.length; i++) {
      const r = x[i] - c[i];
      f += 0.5 * d[i] * r * r;
      g[i] = d[i] * r;
    }
    return f;
  };
}

describe('lbfgs', () => {
  it('finds the Rosenbrock minimum from the classic start (−1.2, 1)', () => {
    const r = lbfgs(rosenbrock, [-1.2, 1], { gradTolerance: 1e-10, functionTolerance: 0 });
    expect(r.reason).toBe('gradient');
    expect(r.converged).toBe(true);
    expect(r.x[0]).toBeCloseTo(1, 8);
    expect(r.x[1]).toBeCloseTo(1, 8);
    expect(r.f).toBeLessThan(1e-18);
    // Steepest descent needs thousands of steps here; a working quasi-Newton method needs tens.
    expect(r.iterations).toBeLessThan(100);
  });

  it('solves a 20-dimensional Rosenbrock', () => {
    const x0 = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
    const r = lbfgs(rosenbrock, x0, { gradTolerance: 1e-9, functionTolerance: 0 });
    expect(r.converged).toBe(true);
    for (const v of r.x) expect(v).toBeCloseTo(1, 7);
  });

  it('minimises an ill-conditioned quadratic (condition 1e4) to the known point', () => {
    const n = 8;
    const d = Array.from({ length: n }, (_, i) => 10 ** ((4 * i) / (n - 1)));
    const c = Array.from({ length: n }, (_, i) => (i % 3) - 1 + 0.25 * i);
    const r = lbfgs(quadratic(d, c), new Float64Array(n), { gradTolerance: 1e-8, functionTolerance: 0 });
    expect(r.reason).toBe('gradient');
    // |x_i − c_i| = |g_i| / d_i ≤ gradTolerance / d_i.
    for (let i = 0; i < n; i++) expect(Math.abs(r.x[i] - c[i])).toBeLessThanOrEqual(1e-8 / d[i]);
    // scipy's L-BFGS-B (memory 10, same tolerance) needs 95 iterations on this problem; steepest
    // descent would need thousands.
    expect(r.iterations).toBeLessThan(150);
  });

  it('with a tighter curvature condition (c2 = 0.1) needs far fewer steps on the same quadratic', () => {
    const n = 8;
    const d = Array.from({ length: n }, (_, i) => 10 ** ((4 * i) / (n - 1)));
    const c = Array.from({ length: n }, (_, i) => (i % 3) - 1 + 0.25 * i);
    const r = lbfgs(quadratic(d, c), new Float64Array(n), { gradTolerance: 1e-8, functionTolerance: 0, c2: 0.1 });
    expect(r.reason).toBe('gradient');
    // Near-exact line searches make L-BFGS with memory ≥ n behave like conjugate gradients: ~n steps.
    expect(r.iterations).toBeLessThanOrEqual(2 * n);
  });

  it('does not modify x0, and returns at once when x0 is already stationary', () => {
    const x0 = Float64Array.of(1, 1);
    const r = lbfgs(rosenbrock, x0);
    expect(Array.from(x0)).toEqual([1, 1]);
    expect(r.iterations).toBe(0);
    expect(r.reason).toBe('gradient');
    expect(r.evaluations).toBe(1);
  });

  it('backs off from steps into a region where f is not finite', () => {
    // f(x) = x − ln x, minimum at 1; a long step from 20 lands at x ≤ 0 where ln is NaN.
    const f: Objective = (x, g) => {
      g[0] = 1 - 1 / x[0];
      return x[0] - Math.log(x[0]);
    };
    const r = lbfgs(f, [20], { gradTolerance: 1e-12 });
    expect(r.converged).toBe(true);
    expect(r.x[0]).toBeCloseTo(1, 9);
  });

  it('stops on the function-change tolerance when it is the looser one', () => {
    // An offset of 100 makes the relative change small long before the gradient vanishes.
    const n = 8;
    const d = Array.from({ length: n }, (_, i) => 10 ** ((4 * i) / (n - 1)));
    const c = Array.from({ length: n }, () => 1);
    const q = quadratic(d, c);
    const r = lbfgs((x, g) => 100 + q(x, g), new Float64Array(n), { gradTolerance: 0, functionTolerance: 1e-10 });
    expect(r.reason).toBe('function');
    expect(r.converged).toBe(true);
    expect(r.f - 100).toBeGreaterThan(0);
    expect(r.f - 100).toBeLessThan(1e-6);
  });

  it('reports max-iterations when it runs out of steps', () => {
    const r = lbfgs(rosenbrock, [-1.2, 1], { maxIterations: 3 });
    expect(r.reason).toBe('max-iterations');
    expect(r.converged).toBe(false);
    expect(r.iterations).toBe(3);
    expect(r.f).toBeLessThan(24.2); // f(x0) = 24.2: every accepted step decreases f
  });

  it('rejects bad options and a non-finite start with a clear error', () => {
    expect(() => lbfgs(rosenbrock, [0, 0], { memory: 0 })).toThrow(/memory must be a positive integer/);
    expect(() => lbfgs(rosenbrock, [0, 0], { c1: 0.9, c2: 0.5 })).toThrow(/0 < c1 < c2 < 1/);
    expect(() => lbfgs(rosenbrock, [0, 0], { gradTolerance: -1 })).toThrow(/gradTolerance/);
    expect(() => lbfgs(rosenbrock, [])).toThrow(/at least one element/);
    expect(() => lbfgs(rosenbrock, [NaN, 0])).toThrow(/not finite at the starting point/);
  });
});
