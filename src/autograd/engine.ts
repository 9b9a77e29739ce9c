/**
 * Reverse-mode automatic differentiation.
 *
 * Each differentiable op records a `GradFn` on its output: the inputs and a closure that maps the
 * output's gradient to the inputs' gradients. `backward()` orders the graph topologically with an
 * explicit stack (no recursion, so a chain of 100,000 ops is fine), walks it in reverse, and sums
 * gradients. Reducing a broadcast gradient back to its input's shape happens here, once, for every op.
 */
import type { Tensor } from '../tensor/tensor.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { isGradEnabled, noGrad } from './grad-mode.js';
import { bornInBackward, releaseBuffer, trackBackward } from '../tensor/pool.js';
import { addInto } from '../ops/elementwise.js';

export interface GradFn {
  /** The op's name, for error messages and graph inspection (`y.gradFn.name`). */
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Gradients for each input (null where none flows), given the gradient of the output. */
  backward(grad: Tensor): readonly (Tensor | null)[];
  /** Tensors the op made for its backward and shares with nobody (e.g. GELU's derivative). */
  readonly saved?: readonly Tensor[];
}

/**
 * Attaches a backward function to `out` when grad mode is on and any input requires a gradient.
 * Ops call this right after computing their forward value: forward and backward stay side by side.
 */
export function record(out: Tensor, name: string, inputs: readonly Tensor[], backward: (grad: Tensor) => readonly (Tensor | null)[], saved?: readonly Tensor[]): Tensor {
  if (!isGradEnabled()) return out;
  let needed = false;
  for (const t of inputs) if (t.requiresGrad) needed = true;
  if (!needed) return out;
  out.setGradFn(saved ? { name, inputs, backward, saved } : { name, inputs, backward });
  return out;
}

/** Sums a broadcast gradient back down to `shape` (the inverse of broadcasting). */
function sumToShape(grad: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(grad.shape, shape)) return grad;
  const lead = grad.shape.length - shape.length;
  if (lead < 0) throw new Error(`autograd: gradient of shape ${formatShape(grad.shape)} cannot be reduced to ${formatShape(shape)}`);
  const dims: number[] = [];
  for (let i = 0; i < grad.shape.length; i++) {
    if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) dims.push(i);
  }
  const summed = dims.length > 0 ? grad.sum(dims, true) : grad;
  return summed.reshape(shape);
}

/** Tensors reachable from `root` through grad functions, inputs before outputs. Iterative DFS. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: { tensor: Tensor; next: number }[] = [{ tensor: root, next: 0 }];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top.tensor.gradFn?.inputs ?? [];
    if (top.next < inputs.length) {
      const input = inputs[top.next++];
      if (input.requiresGrad && !visited.has(input)) {
        visited.add(input);
        stack.push({ tensor: input, next: 0 });
      }
    } else {
      order.push(top.tensor);
      stack.pop();
    }
  }
  return order;
}

export interface BackwardOptions {
  /**
   * After the pass, hand the buffers of the graph's intermediate results (every op output in it
   * and what ops saved for their backward, except the root and storage shared with a leaf, e.g. a
   * transposed weight) to the buffer pool, so the next step's activations reuse them. For
   * training loops that read nothing of the graph but the root afterwards: TensorLM's own
   * (train/loop.ts) and users' (`loss.backward({ recycleIntermediates: true })`). Off by default,
   * because a tensor computed on the way (`logits`) would then be overwritten by the next step;
   * PyTorch's default of freeing the graph's saved tensors cannot know either which outputs the
   * caller still holds. Skipped when any tensor in the graph retains its gradient.
   */
  recycleIntermediates?: boolean;
}

export function backward(root: Tensor, gradient?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error('backward: tensor does not require grad and has no grad_fn (did you forget requiresGrad, or call it inside noGrad?)');
  }
  noGrad(() => {
    let seed: Tensor;
    if (gradient === undefined) {
      if (root.size !== 1) {
        throw new Error(`backward: grad can be implicitly created only for scalar outputs, got shape ${formatShape(root.shape)}; pass a gradient`);
      }
      seed = root.onesLike();
    } else {
      if (!shapesEqual(gradient.shape, root.shape)) {
        throw new Error(`backward: gradient shape ${formatShape(gradient.shape)} does not match tensor shape ${formatShape(root.shape)}`);
      }
      seed = gradient.dtype === 'float32' ? gradient : gradient.float();
    }
    trackBackward(() => {
      const grads = new Map<Tensor, Tensor>([[root, seed]]);
      const pending = new PendingBuffers();
      pending.hold(seed);
      const order = topologicalOrder(root);
      for (let i = order.length - 1; i >= 0; i--) {
        const tensor = order[i];
        const grad = grads.get(tensor);
        if (grad === undefined) continue;
        grads.delete(tensor); // free as we go: a long graph holds at most its frontier
        const fn = tensor.gradFn;
        // A leaf's first gradient takes over a buffer nothing else holds (PyTorch's AccumulateGrad
        // does the same); otherwise it is accumulated as a copy.
        if (fn === null && tensor.grad === null && pending.isSoleOwner(grad)) {
          tensor.grad = grad;
          pending.forget(grad);
          continue;
        }
        if (fn === null || tensor.retainsGrad) accumulate(tensor, grad);
        if (fn !== null) {
          const inputGrads = fn.backward(grad);
          for (let k = 0; k < fn.inputs.length; k++) {
            const input = fn.inputs[k];
            const g = inputGrads[k];
            if (!input.requiresGrad || g === null || g === undefined) continue;
            const shaped = sumToShape(g, input.shape);
            const previous = grads.get(input);
            if (previous === undefined) {
              grads.set(input, shaped);
              pending.hold(shaped);
              continue;
            }
            // A second gradient for the same input: summed in place into a buffer only this entry
            // holds (as PyTorch's engine does), else into a new one; the addend is then dead
            // unless some entry (or the gradient being processed) still holds it.
            if (pending.isSoleOwner(previous) && previous.dtype === 'float32' && shaped.dtype === 'float32') addInto(previous, shaped);
            else {
              const next = previous.add(shaped);
              grads.set(input, next);
              pending.hold(next);
              pending.drop(previous);
            }
            pending.releaseIfUnheld(shaped);
          }
        }
        // Consumed: unless an input's gradient is (a view of) it, its buffer is dead.
        pending.drop(grad);
      }
      if (options.recycleIntermediates) recycleGraph(root, order);
    });
  });
}

/** See BackwardOptions.recycleIntermediates. */
function recycleGraph(root: Tensor, order: readonly Tensor[]): void {
  const keep = new Set<unknown>([root.storage]);
  for (const t of order) {
    if (t.retainsGrad) return;
    if (t.gradFn === null) keep.add(t.storage);
  }
  const released = new Set<unknown>();
  const release = (s: unknown) => {
    if (keep.has(s) || released.has(s) || !(s instanceof Float32Array)) return;
    released.add(s);
    releaseBuffer(s);
  };
  for (const t of order) {
    if (t.gradFn === null) continue;
    release(t.storage);
    for (const saved of t.gradFn.saved ?? []) release(saved.storage);
  }
}

/**
 * Reference counts of the gradient buffers the pending map holds, for those created during this
 * backward pass (tensor/pool.ts); a buffer whose count falls to zero is unreachable and recycled.
 * Views share their base's storage, so they count against it.
 */
class PendingBuffers {
  readonly #counts = new Map<Float32Array, number>();

  hold(t: Tensor): void {
    const s = t.storage;
    if (bornInBackward(s)) this.#counts.set(s, (this.#counts.get(s) ?? 0) + 1);
  }

  /** Whether `t` is a dense gradient whose buffer was made in this pass and is held only by its one pending entry. */
  isSoleOwner(t: Tensor): boolean {
    return this.#counts.get(t.storage as Float32Array) === 1 && t.offset === 0 && t.size === t.storage.length && t.isContiguous && !t.requiresGrad;
  }

  /** Recycles `t`'s buffer if it was made in this pass and no pending gradient holds it. */
  releaseIfUnheld(t: Tensor): void {
    const s = t.storage;
    if (bornInBackward(s) && !this.#counts.has(s)) releaseBuffer(s);
  }

  /** Stops tracking a buffer that now belongs to someone (a leaf's .grad): never recycled. */
  forget(t: Tensor): void {
    this.#counts.delete(t.storage as Float32Array);
  }

  drop(t: Tensor): void {
    const s = t.storage as Float32Array;
    const n = this.#counts.get(s);
    if (n === undefined) return;
    if (n > 1) this.#counts.set(s, n - 1);
    else {
      this.#counts.delete(s);
      releaseBuffer(s);
    }
  }
}

function accumulate(tensor: Tensor, grad: Tensor): void {
  // A stored gradient always owns dense memory: backward may hand the same tensor to several
  // inputs, or an expanded view, and optimizers and clipGradNorm update .grad in place.
  tensor.grad = tensor.grad === null ? grad.clone() : tensor.grad.add(grad);
}
