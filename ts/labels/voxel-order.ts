/**
 * Two orders of the same 3D grid. NIfTI files (and `Volume.data`) store voxels with the first index fastest
 * (i + X * (j + Y * k)); PyTorch/MONAI tensors [.., X, Y, Z] made from nibabel arrays are row-major, the last index
 * fastest ((i * Y + j) * Z + k). The networks see the row-major order, so everything crossing between a network
 * and a Volume goes through these two functions.
 */
import type { VolumeData } from './label-volume.js';

function checkSize(op: string, n: number, shape: readonly number[]): void {
  if (shape.length !== 3 || n !== shape[0] * shape[1] * shape[2])
    throw new RangeError(`${op}: ${n} elements do not fill a grid of shape [${shape.join(', ')}]`);
}

/** Row-major [X, Y, Z] (tensor) -> first-index-fastest (NIfTI / Volume). */
export function tensorToVolumeOrder<T extends VolumeData>(data: T, shape: readonly number[]): T {
  checkSize('tensorToVolumeOrder', data.length, shape);
  const [X, Y, Z] = shape;
  const out = new (data.constructor as new (n: number) => T)(data.length);
  let s = 0;
  for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) for (let k = 0; k < Z; k++) out[i + X * (j + Y * k)] = data[s++];
  return out;
}

/** First-index-fastest (NIfTI / Volume) -> row-major [X, Y, Z] (tensor). */
export function volumeToTensorOrder<T extends VolumeData>(data: T, shape: readonly number[]): T {
  checkSize('volumeToTensorOrder', data.length, shape);
  const [X, Y, Z] = shape;
  const out = new (data.constructor as new (n: number) => T)(data.length);
  let s = 0;
  for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) for (let k = 0; k < Z; k++) out[s++] = data[i + X * (j + Y * k)];
  return out;
}
