import type { DType, DeviceTensor } from './types.js';

/** Shape bookkeeping common to every backend's tensors; storage is the subclass's. */
export abstract class BaseTensor implements DeviceTensor {
  readonly shape: readonly number[];
  readonly size: number;
  private disposedFlag = false;

  constructor(readonly owner: object, shape: readonly number[], readonly dtype: DType) {
    this.shape = Object.freeze(shape.slice());
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  abstract read(): Float32Array | Uint16Array;
  abstract write(data: Float32Array | Uint16Array): void;
  protected abstract release(): void;

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.release();
  }

  protected assertLive(op: string): void {
    if (this.disposedFlag) throw new TypeError(`${op}: tensor has been disposed`);
  }
}
