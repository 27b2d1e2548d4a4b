/**
 * Reuse of output buffers. A fresh Float32Array costs more than most kernels it holds the result of
 * (measured here: `new Float32Array(65536)` 55-100 us — the pages are zeroed and faulted in — against
 * 5 us for a native multiply of the same size). Buffers the native kernels allocate are returned to a
 * pool when tfjs releases the tensor and handed to the next kernel that needs the same length.
 *
 * Safety: a buffer is recycled only while nothing outside the backend can still see it. tfjs's cpu
 * backend hands its storage out by reference in a few places — `dataSync()`/`data()` return it, and
 * a simple `slice` returns a subarray view of it — so any read of a pooled buffer, and any tensor
 * written with that buffer (or a view of it) as its storage, retires the buffer from the pool for good —
 * except the views the pool makes itself (`outputViews`): a buffer cut into several tensors comes back
 * when the last of them is released.
 */

interface CpuData {
  values?: unknown;
}

/** What the pool hooks of tfjs-backend-cpu's backend object (the methods every kernel goes through). */
export interface PoolableBackend {
  data: { get(dataId: object): CpuData | undefined; has(dataId: object): boolean };
  disposeData(dataId: object, force?: boolean): boolean;
  readSync(dataId: object): unknown;
  write(values: unknown, shape: number[], dtype: string): object;
  move(dataId: object, values: unknown, shape: number[], dtype: string, refCount: number): void;
}

const MB = 1024 * 1024;

export class BufferPool {
  /** Buffers this pool allocated and that may come back (no outside reference seen). */
  private readonly owned = new WeakSet<Float32Array>();
  /** The ArrayBuffer behind each owned array, to catch views written as new tensors. */
  private readonly byBuffer = new WeakMap<ArrayBufferLike, Float32Array>();
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;
  private restore: (() => void) | undefined;
  /** The buffer a native kernel is writing as its output right now (not an outside reference). */
  private pending: Float32Array | undefined;
  /** Buffers cut into views by `outputViews`, by ArrayBuffer: the buffer and how many views are alive. */
  private readonly groups = new WeakMap<ArrayBufferLike, { root: Float32Array; live: number }>();
  /** Counters for tests and reports. */
  readonly stats = { allocated: 0, reused: 0, recycled: 0, retired: 0 };

  constructor(readonly capacityBytes: number = defaultCapacity()) {}

  /** A buffer of `length` floats with arbitrary contents (every native kernel writes all of it). */
  take(length: number): Float32Array {
    const list = this.free.get(length);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.freeBytes -= reused.byteLength;
      this.stats.reused++;
      return reused;
    }
    const fresh = new Float32Array(length);
    if (length >= 1024) {
      // small buffers are cheap to allocate: not worth tracking
      this.owned.add(fresh);
      this.byBuffer.set(fresh.buffer, fresh);
    }
    this.stats.allocated++;
    return fresh;
  }

  /** Creates the output tensor of a native kernel with a buffer from `take` as its storage. */
  output<T>(values: Float32Array, make: (values: Float32Array) => T): T {
    this.pending = values;
    try {
      return make(values);
    } finally {
      this.pending = undefined;
    }
  }

  /**
   * Creates one tensor per consecutive view of `values` (a buffer from `take`, `sizes` summing to at most
   * its length) with `make`; the buffer comes back to the pool when the last of them is released (or never,
   * if any of them is read or written elsewhere).
   */
  outputViews<T>(values: Float32Array, sizes: number[], make: (view: Float32Array, index: number) => T): T[] {
    const group = { root: values, live: 0 };
    if (this.owned.has(values)) this.groups.set(values.buffer, group);
    let at = 0;
    return sizes.map((n, i) => {
      const view = values.subarray(at, at + n);
      at += n;
      const t = this.output(view, (v) => make(v, i));
      group.live++;
      return t;
    });
  }

  /** Gives back a temporary buffer from `take` that never became a tensor. */
  release(values: Float32Array): void {
    if (this.owned.has(values)) this.give(values);
  }

  private retire(values: unknown): void {
    if (!(values instanceof Float32Array) || values === this.pending) return;
    const root = this.byBuffer.get(values.buffer);
    if (root !== undefined && this.owned.delete(root)) this.stats.retired++;
    this.groups.delete(values.buffer);
  }

  private give(values: Float32Array): void {
    if (this.freeBytes + values.byteLength > this.capacityBytes) return;
    let list = this.free.get(values.length);
    if (list === undefined) {
      list = [];
      this.free.set(values.length, list);
    }
    list.push(values);
    this.freeBytes += values.byteLength;
    this.stats.recycled++;
  }

  /** Hooks the backend's dispose, read and write paths; `detach` undoes it. */
  attach(backend: PoolableBackend): void {
    if (this.restore !== undefined) return;
    const { disposeData, readSync, write, move } = backend;
    // own properties shadow the prototype's methods; deleting them restores the originals
    backend.disposeData = (dataId, force) => {
      const values = backend.data.get(dataId)?.values;
      const released = disposeData.call(backend, dataId, force);
      if (values instanceof Float32Array && !backend.data.has(dataId)) {
        // a view made by outputViews: its buffer comes back with the last of them
        const group = this.groups.get(values.buffer);
        const whole = group === undefined ? values : group.root;
        if (group !== undefined && --group.live > 0) return released;
        if (group !== undefined) this.groups.delete(values.buffer);
        if (this.owned.has(whole)) {
          this.owned.delete(whole); // back in `free`: owned again when taken
          this.give(whole);
          this.owned.add(whole);
        }
      }
      return released;
    };
    backend.readSync = (dataId) => {
      this.retire(backend.data.get(dataId)?.values);
      return readSync.call(backend, dataId);
    };
    backend.write = (values, shape, dtype) => {
      this.retire(values);
      return write.call(backend, values, shape, dtype);
    };
    backend.move = (dataId, values, shape, dtype, refCount) => {
      this.retire(values);
      move.call(backend, dataId, values, shape, dtype, refCount);
    };
    this.restore = () => {
      for (const key of ['disposeData', 'readSync', 'write', 'move'] as const)
        delete (backend as unknown as Record<string, unknown>)[key];
    };
  }

  detach(): void {
    this.restore?.();
    this.restore = undefined;
    this.clear();
  }

  /** Drops every pooled buffer (memory back to the garbage collector). */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  get pooledBytes(): number {
    return this.freeBytes;
  }
}

function defaultCapacity(): number {
  const env = Number(process.env.FWDGRAD_NATIVE_POOL_MB);
  return Number.isFinite(env) && env >= 0 ? env * MB : 1024 * MB;
}
