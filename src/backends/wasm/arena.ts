/**
 * A scratch arena over a WebAssembly linear memory: a bump allocator from __heap_base up, reset
 * after every kernel call, so memory grows to the largest single call's need and nothing
 * accumulates between calls. Also the minimal WebAssembly API typings this backend uses.
 */

/**
 * The little of the WebAssembly JS API used here, typed locally: the project compiles against
 * lib ES2022 without DOM, and @types/node 20 does not declare the WebAssembly namespace.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

export const WebAssemblyApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export class Arena {
  /** Next free byte; back to `base` after every call. */
  private top: number;
  private view: Float32Array;

  constructor(
    private readonly memory: WasmMemory,
    heapBase: number,
  ) {
    this.base = Math.ceil(heapBase / 64) * 64;
    this.top = this.base;
    this.view = new Float32Array(memory.buffer);
  }

  private base: number;

  /** Bytes pinned below `base` so far (see `pin`). */
  pinnedBytes = 0;

  /**
   * Reserves `bytes` for the rest of the module's life, below the scratch area (the int8 codes of
   * quantized layers, copied once instead of at every call), and returns their byte address.
   * Only between kernel calls: the scratch area starts after it from then on.
   */
  pin(bytes: number): number {
    if (this.top !== this.base) throw new Error('Arena.pin: only between kernel calls');
    const start = this.base;
    const end = start + Math.ceil(bytes / 64) * 64;
    const size = this.memory.buffer.byteLength;
    if (end > size) this.memory.grow(Math.ceil((end - size) / 65536)); // RangeError past the maximum
    this.base = end;
    this.top = end;
    this.pinnedBytes += end - start;
    return start;
  }

  /** Reserves `count` floats, 64-byte aligned, and returns their index in the float view. */
  alloc(count: number): number {
    // Plain arithmetic, not bit operations: offsets may pass 2^31 in a 4 GiB memory.
    const start = this.top;
    const end = start + Math.ceil((count * 4) / 64) * 64;
    const size = this.memory.buffer.byteLength;
    if (end > size) this.memory.grow(Math.ceil((end - size) / 65536)); // RangeError past the maximum
    this.top = end;
    return start / 4;
  }

  /** The float view of memory, renewed after a grow (which replaces the buffer). */
  floats(): Float32Array {
    if (this.view.buffer !== this.memory.buffer) this.view = new Float32Array(this.memory.buffer);
    return this.view;
  }

  /**
   * Runs one kernel body on a fresh arena and resets it afterwards. When memory cannot grow
   * (RangeError), `fallback` — the reference kernel — runs instead.
   */
  run(body: () => void, fallback: () => void): void {
    this.top = this.base;
    try {
      body();
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      fallback();
    } finally {
      this.top = this.base;
    }
  }
}
