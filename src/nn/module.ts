/**
 * Module: the base class of layers and models, like `torch.nn.Module`.
 *
 * Registration is automatic, as PyTorch users expect: every own enumerable field of a module is
 * inspected in insertion order (the order the constructor assigns them), and
 *   - a Module value is a child (`this.fc1 = new Linear(3, 5)` just works);
 *   - a Tensor value is a parameter when it was made with `parameter(t)`, or when it is a leaf
 *     tensor that requires grad (`this.w = randn([3], { requiresGrad: true })`);
 *   - a Tensor registered with `registerBuffer(name, t)` is a buffer: saved in stateDict, never
 *     a parameter;
 *   - `null`/`undefined` fields (e.g. `bias = null`) and anything else are ignored.
 * Prefer `parameter(t)` for learnable tensors: it keeps the tensor a parameter (in parameters()
 * and stateDict) even after it is frozen with `requiresGrad = false`, which a plain
 * requires-grad tensor would not survive. `registerParameter` / `registerModule` exist for names
 * that are not known in advance; they simply assign the field.
 * Plain arrays of modules are rejected with a pointer to `ModuleList`, because silently skipping
 * their parameters is the classic bug.
 *
 * JavaScript objects cannot be made callable, so a module is run with `module.forward(x)`
 * (PyTorch's `module(x)`). `Module<In, Out>` types forward as `(...args: In) => Out`, by default
 * one Tensor in and one out; a loss module is `Module<[Tensor, Tensor], Tensor>`.
 *
 * Forward hooks (PyTorch's `register_forward_hook` / `register_forward_pre_hook`) observe or
 * change what a module sees and returns: `registerForwardPreHook((m, inputs) => …)` runs before
 * forward and may return replacement inputs; `registerForwardHook((m, inputs, output) => …)` runs
 * after it and may return a replacement output. Hooks run in registration order; each
 * registration returns a handle whose `remove()` unregisters it.
 *
 * How hooks fire at no cost when unused: since `forward` is the call, the first registration on a
 * module shadows its class's `forward` with an own, non-enumerable property — a wrapper that runs
 * the hooks around the class's method — and removing the last hook deletes that property again
 * (V8 then gives the object back its original hidden class, so call sites stay monomorphic).
 * A module nobody hooks therefore runs exactly its class's `forward`: no flag to test, no wrapper,
 * no call-site convention for parents to follow (a training step runs ~30 module forwards, and
 * every existing `child.forward(x)` fires hooks as it is). A subclass whose forward calls
 * `super.forward(...)` reaches the parent's method directly, so hooks fire once per call.
 * Modules that compute something only for observers (the attention probabilities of
 * MultiHeadAttention) ask `hasForwardHooks()`.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

const parameters = new WeakSet<Tensor>();

/**
 * Marks `t` as a parameter (PyTorch's `nn.Parameter(t)`): a module field holding it is registered
 * as a parameter. Sets `requiresGrad` (pass false for a frozen parameter) and returns `t`;
 * `t` must be a float32 leaf.
 */
export function parameter(t: Tensor, requiresGrad = true): Tensor {
  if (!t.isLeaf) throw new Error('parameter: only leaf tensors can be parameters; use t.detach() to cut it from the graph');
  if (t.dtype !== 'float32') throw new TypeError(`parameter: parameters must be float32, got ${t.dtype}`);
  t.requiresGrad = requiresGrad;
  parameters.add(t);
  return t;
}

/** Whether `t` was marked with `parameter()`. */
export function isParameter(t: Tensor): boolean {
  return parameters.has(t);
}

/** Any module, whatever its forward signature. */
export type AnyModule = Module<never, unknown>;

// The hook types take Module's In/Out, mapped so that every concrete module stays assignable to
// AnyModule (In = never, Out = unknown): hook parameters are contravariant, so AnyModule's hooks
// must accept any argument list and may not replace anything.

/** The arguments a hook sees: `In`, or any argument list for AnyModule. */
export type HookInputs<In extends unknown[]> = [In] extends [never] ? readonly unknown[] : In;

/** What a forward hook may return: a replacement output, or nothing (only nothing for AnyModule). */
export type HookResult<Out> = unknown extends Out ? void : Out | void;

/**
 * Runs before `forward` with the module and its arguments; returning an array replaces the
 * arguments (PyTorch's forward pre-hook; wrap a single tensor as `[x]`).
 */
export type ForwardPreHook<In extends unknown[] = [Tensor], M = AnyModule> = (module: M, inputs: HookInputs<In>) => In | void;

/**
 * Runs after `forward` with the module, the arguments forward received and its output; returning a
 * value replaces the output (PyTorch's forward hook).
 */
export type ForwardHook<In extends unknown[] = [Tensor], Out = Tensor, M = AnyModule> = (module: M, inputs: HookInputs<In>, output: Out) => HookResult<Out>;

/** Unregisters a hook; calling remove() again does nothing. */
export interface RemovableHandle {
  remove(): void;
}

type StoredHook = (module: unknown, inputs: unknown[], output?: unknown) => unknown;

/** One module's hooks while any is registered. The arrays are replaced, never mutated, so a call iterates a snapshot. */
interface HookState {
  pre: readonly { fn: StoredHook }[];
  post: readonly { fn: StoredHook }[];
  /** The own `forward` property the wrapper shadows (rare: an instance-level forward), to put back. */
  shadowed: PropertyDescriptor | undefined;
  wrapper: (...args: unknown[]) => unknown;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** Indents every line after the first, like PyTorch's `_addindent` for nested reprs. */
function indentTail(s: string, spaces: number): string {
  const pad = ' '.repeat(spaces);
  return s
    .split('\n')
    .map((line, i) => (i === 0 ? line : pad + line))
    .join('\n');
}

export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  /** Training mode (the default) or evaluation mode; switch with train() / eval(). */
  training = true;
  readonly #bufferNames = new Set<string>();
  readonly #nonPersistent = new Set<string>();

  /** Null while no hook is registered, which is what keeps unhooked modules free of any wrapper. */
  #hooks: HookState | null = null;

  /** The computation. Call it directly: `model.forward(x)` (registered hooks run around it). */
  abstract forward(...args: In): Out;

  // ---- forward hooks -------------------------------------------------------------------------

  /** Registers `hook` to run before every forward call (see ForwardPreHook); returns its handle. */
  registerForwardPreHook(hook: ForwardPreHook<In, this>): RemovableHandle {
    return this.#addHook('pre', hook as unknown as StoredHook, 'registerForwardPreHook');
  }

  /** Registers `hook` to run after every forward call (see ForwardHook); returns its handle. */
  registerForwardHook(hook: ForwardHook<In, Out, this>): RemovableHandle {
    return this.#addHook('post', hook as unknown as StoredHook, 'registerForwardHook');
  }

  /** Whether any forward hook or pre-hook is registered on this module (not its children). */
  hasForwardHooks(): boolean {
    return this.#hooks !== null;
  }

  #addHook(kind: 'pre' | 'post', fn: StoredHook, op: string): RemovableHandle {
    if (typeof fn !== 'function') throw new TypeError(`${op}: hook must be a function, got ${typeof fn}`);
    const state = (this.#hooks ??= this.#installHooks());
    // An entry object of its own: the same function registered twice is two hooks, removed one at a time.
    const entry = { fn };
    state[kind] = [...state[kind], entry];
    let removed = false;
    return {
      remove: () => {
        if (removed) return;
        removed = true;
        state[kind] = state[kind].filter((e) => e !== entry);
        if (this.#hooks === state && state.pre.length === 0 && state.post.length === 0) this.#uninstallHooks(state);
      },
    };
  }

  /** Shadows forward with the hook-running wrapper (see the module comment). */
  #installHooks(): HookState {
    const shadowed = Object.getOwnPropertyDescriptor(this, 'forward');
    const inner = this.forward as unknown as (...args: unknown[]) => unknown;
    const state: HookState = { pre: [], post: [], shadowed, wrapper: (...args) => this.#runHooked(state, inner, args) };
    // Non-enumerable, so parameter/child registration (which walks Object.keys) never sees it.
    Object.defineProperty(this, 'forward', { value: state.wrapper, writable: true, configurable: true, enumerable: false });
    return state;
  }

  #uninstallHooks(state: HookState): void {
    this.#hooks = null;
    // Someone assigned their own forward over the wrapper meanwhile: theirs stays.
    if (Object.getOwnPropertyDescriptor(this, 'forward')?.value !== state.wrapper) return;
    if (state.shadowed) Object.defineProperty(this, 'forward', state.shadowed);
    else Reflect.deleteProperty(this, 'forward');
  }

  #runHooked(state: HookState, inner: (...args: unknown[]) => unknown, args: unknown[]): unknown {
    // A snapshot: hooks that a hook adds or removes take effect from the next call.
    const { pre, post } = state;
    for (const { fn } of pre) {
      const replaced = fn(this, args);
      if (replaced !== undefined) {
        if (!Array.isArray(replaced)) throw new TypeError(`${this.constructor.name}: a forward pre-hook must return the inputs as an array (e.g. [x]) or nothing, got ${typeof replaced}`);
        args = replaced;
      }
    }
    let output = inner.apply(this, args);
    for (const { fn } of post) {
      const replaced = fn(this, args, output);
      if (replaced !== undefined) output = replaced;
    }
    return output;
  }

  // ---- registration --------------------------------------------------------------------------

  /** Adds (or replaces) a parameter under `name`; the same as `this[name] = parameter(t)`. */
  registerParameter(name: string, t: Tensor | null): void {
    this.#checkName(name, 'registerParameter');
    this.#fields()[name] = t === null || isParameter(t) ? t : parameter(t);
  }

  /** Adds (or replaces) a child module under `name`; the same as `this[name] = m`. */
  registerModule(name: string, m: AnyModule | null): void {
    this.#checkName(name, 'registerModule');
    this.#fields()[name] = m;
  }

  /**
   * Adds a buffer: state that is saved in stateDict but is not a parameter (running statistics,
   * masks, position tables). `persistent: false` keeps it out of stateDict. Read it back as
   * `this[name]`; reassigning the field replaces the buffer.
   */
  registerBuffer(name: string, t: Tensor | null, options: { persistent?: boolean } = {}): void {
    this.#checkName(name, 'registerBuffer');
    this.#fields()[name] = t;
    this.#bufferNames.add(name);
    if (options.persistent === false) this.#nonPersistent.add(name);
    else this.#nonPersistent.delete(name);
  }

  #fields(): Record<string, unknown> {
    return this as unknown as Record<string, unknown>;
  }

  #checkName(name: string, op: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) {
      throw new Error(`${op}: name must be a non-empty string without '.', got '${String(name)}'`);
    }
  }

  /** This module's own parameters, children and buffers, in field order. */
  #ownMembers(): { params: [string, Tensor][]; children: [string, AnyModule][]; buffers: [string, Tensor, boolean][] } {
    const params: [string, Tensor][] = [];
    const children: [string, AnyModule][] = [];
    const buffers: [string, Tensor, boolean][] = [];
    const fields = this.#fields();
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (this.#bufferNames.has(key)) {
        if (value instanceof Tensor) buffers.push([key, value, !this.#nonPersistent.has(key)]);
      } else if (value instanceof Module) {
        children.push([key, value]);
      } else if (value instanceof Tensor) {
        if (isParameter(value) || (value.isLeaf && value.requiresGrad)) params.push([key, value]);
      } else if (Array.isArray(value) && value.some((v) => v instanceof Module)) {
        throw new Error(
          `${this.constructor.name}: field '${key}' is a plain array of modules, whose parameters would not be registered; use new ModuleList([...]) instead`,
        );
      }
    }
    return { params, children, buffers };
  }

  // ---- traversal -----------------------------------------------------------------------------

  /** Direct children with their field names (each module once). */
  namedChildren(): [string, AnyModule][] {
    const seen = new Set<AnyModule>();
    const out: [string, AnyModule][] = [];
    for (const [name, m] of this.#ownMembers().children) {
      if (seen.has(m)) continue;
      seen.add(m);
      out.push([name, m]);
    }
    return out;
  }

  children(): AnyModule[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and all its descendants, depth first, with dotted names ('' for this one); each module once. */
  namedModules(prefix = ''): [string, AnyModule][] {
    const out: [string, AnyModule][] = [];
    const seen = new Set<AnyModule>();
    const visit = (m: AnyModule, name: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [childName, child] of m.namedChildren()) visit(child, name === '' ? childName : `${name}.${childName}`);
    };
    visit(this as unknown as AnyModule, prefix);
    return out;
  }

  modules(): AnyModule[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Parameters with dotted names ('layers.0.weight'); a shared parameter appears once, under its first name. */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, p] of m.#ownMembers().params) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([prefix === '' ? name : `${prefix}.${name}`, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Buffers with dotted names, persistent or not. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, b] of m.#ownMembers().buffers) out.push([prefix === '' ? name : `${prefix}.${name}`, b]);
    }
    return out;
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** Number of parameter elements (shared parameters counted once); `{ trainable: true }` counts only those requiring grad. */
  numParameters(options: { trainable?: boolean } = {}): number {
    return this.parameters()
      .filter((p) => !options.trainable || p.requiresGrad)
      .reduce((n, p) => n + p.size, 0);
  }

  /**
   * Calls fn on every descendant, children before their parent (PyTorch's order), then on this
   * module; a module shared by two parents is visited once. Returns this.
   */
  apply(fn: (m: AnyModule) => void): this {
    const seen = new Set<AnyModule>();
    const visit = (m: AnyModule): void => {
      if (seen.has(m)) return;
      seen.add(m);
      for (const child of m.children()) visit(child);
      fn(m);
    };
    visit(this as unknown as AnyModule);
    return this;
  }

  // ---- modes and gradients -------------------------------------------------------------------

  /** Sets training mode on this module and all descendants (Dropout reads it); returns this. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode: train(false). */
  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient (sets it to null, PyTorch's default set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Turns gradients on or off for every parameter (freezing); returns this. */
  requiresGrad_(requiresGrad = true): this {
    for (const p of this.parameters()) p.requiresGrad = requiresGrad;
    return this;
  }

  // ---- state ---------------------------------------------------------------------------------

  /**
   * Every parameter and persistent buffer under its dotted name, including each name of a shared
   * (tied) tensor as PyTorch does. The live tensors, detached from the graph.
   */
  #stateEntries(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const visit = (m: AnyModule, prefix: string, ancestors: Set<AnyModule>): void => {
      if (ancestors.has(m)) throw new Error(`stateDict: module cycle through '${prefix}'`);
      const own = m.#ownMembers();
      const key = (name: string) => (prefix === '' ? name : `${prefix}.${name}`);
      for (const [name, p] of own.params) out.push([key(name), p]);
      for (const [name, b, persistent] of own.buffers) if (persistent) out.push([key(name), b]);
      ancestors.add(m);
      for (const [name, child] of own.children) visit(child, key(name), ancestors);
      ancestors.delete(m);
    };
    visit(this as unknown as AnyModule, '', new Set());
    return out;
  }

  /** Parameters and persistent buffers by dotted name, as detached tensors sharing storage with the model. */
  stateDict(): Record<string, Tensor> {
    const dict: Record<string, Tensor> = {};
    for (const [name, t] of this.#stateEntries()) dict[name] = t.detach();
    return dict;
  }

  /**
   * Copies values from `dict` into this module's parameters and buffers, in place (so optimizers
   * holding the parameters keep working). Everything is checked before anything is copied:
   * a shape mismatch is always an error; missing and unexpected keys are errors when `strict`
   * (the default), and are returned either way.
   */
  loadStateDict(dict: Readonly<Record<string, Tensor>>, options: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const entries = this.#stateEntries();
    const own = new Set(entries.map(([name]) => name));
    const missingKeys = entries.map(([name]) => name).filter((name) => !Object.prototype.hasOwnProperty.call(dict, name));
    const unexpectedKeys = Object.keys(dict).filter((name) => !own.has(name));
    const errors: string[] = [];
    for (const [name, target] of entries) {
      const source = Object.prototype.hasOwnProperty.call(dict, name) ? dict[name] : undefined;
      if (source === undefined) continue;
      if (!(source instanceof Tensor)) {
        errors.push(`value for ${name} is not a Tensor`);
      } else if (!shapesEqual(source.shape, target.shape)) {
        errors.push(`size mismatch for ${name}: copying a param with shape ${formatShape(source.shape)}, the shape in current model is ${formatShape(target.shape)}`);
      }
    }
    if (strict) {
      if (missingKeys.length > 0) errors.push(`missing key(s) in state dict: ${listKeys(missingKeys)}`);
      if (unexpectedKeys.length > 0) errors.push(`unexpected key(s) in state dict: ${listKeys(unexpectedKeys)}`);
    }
    if (errors.length > 0) throw new Error(`loadStateDict: ${listProblems(errors)}`);
    noGrad(() => {
      for (const [name, target] of entries) {
        const source = Object.prototype.hasOwnProperty.call(dict, name) ? dict[name] : undefined;
        if (source !== undefined && source !== target) target.copy_(source);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---- printing ------------------------------------------------------------------------------

  /** The text inside this module's parentheses, e.g. 'inFeatures=3, outFeatures=5, bias=true'. */
  extraRepr(): string {
    return '';
  }

  /** The module tree, printed like PyTorch's repr. */
  toString(): string {
    return this.#repr(new Set());
  }

  #repr(ancestors: Set<AnyModule>): string {
    const name = this.constructor.name;
    const self = this as unknown as AnyModule;
    if (ancestors.has(self)) return `${name}(<cycle>)`;
    const extra = this.extraRepr();
    const children = this.#ownMembers().children;
    if (children.length === 0) return `${name}(${extra})`;
    ancestors.add(self);
    const lines = extra === '' ? [] : extra.split('\n');
    for (const [childName, child] of children) lines.push(`(${childName}): ${indentTail(child.#repr(ancestors), 2)}`);
    ancestors.delete(self);
    return `${name}(\n${lines.map((l) => '  ' + l).join('\n')}\n)`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

// nn sits below io (docs/architecture.md), so these two small message helpers are its own.

/** Keys for a message: quoted, each cut to 60 characters, at most three, then "… and N more". */
function listKeys(keys: readonly string[], max = 3): string {
  const shown = keys.slice(0, max).map((k) => JSON.stringify(k.length > 60 ? `${k.slice(0, 60)}…` : k));
  return keys.length > max ? `${shown.join(', ')} … and ${keys.length - max} more` : shown.join(', ');
}

/** The first three problems, then "… and N more problems": a message stays a few hundred characters. */
function listProblems(problems: readonly string[], max = 3): string {
  return problems.length > max ? `${problems.slice(0, max).join('; ')}; … and ${problems.length - max} more problems` : problems.join('; ');
}
