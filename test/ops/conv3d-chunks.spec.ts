/**
 * The direct convolution packs its input a chunk of output slices at a time (a flat range of outputs for 1x1x1),
 * so a full-resolution decoder layer does not copy its whole input into scratch. Chunk size must not change a
 * single bit: conv3d attribute chunk_bytes forces chunks of one slice (or one output) and of a few slices on small
 * inputs, whose outputs must equal the unchunked ones exactly, in fp32 on every backend and in bf16 on native
 * where the CPU has bf16 kernels; and all match the fp64 reference.
 */
import type { Backend, DeviceTensor } from '../../ts/backend/types.js';
import { eachBackend, poisoned, withNativeBackend } from '../helpers/backends.js';
import { conv3dRef, numel, randn, relL2, type ConvCase } from '../helpers/reference.js';
import test from 'ava';

interface Case extends ConvCase {
  /** chunk_bytes giving chunks of a few slices (the packed input is 4 bytes x channels x phases x padded plane per slice). */
  few: number;
}

const cases: Case[] = [
  { title: '3x3x3 pad 1, batch 2', x: [2, 5, 9, 6, 7], w: [7, 5, 3, 3, 3], stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1], few: 3 * 4 * 6 * 8 * 9 },
  { title: '3x3x3 stride 2 pad 1', x: [1, 3, 11, 9, 7], w: [4, 3, 3, 3, 3], stride: [2, 2, 2], before: [1, 1, 1], after: [1, 1, 1], few: 2 * 4 * 3 * 8 * 6 * 5 },
  { title: '3x3x3 stride 2, end pad (0,1)', x: [1, 4, 10, 6, 8], w: [5, 4, 3, 3, 3], stride: [2, 2, 2], before: [0, 0, 0], after: [1, 1, 1], few: 2 * 4 * 4 * 8 * 4 * 5 },
  { title: '3x3x3 no padding', x: [1, 3, 8, 5, 7], w: [6, 3, 3, 3, 3], stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0], few: 2 * 4 * 3 * 5 * 7 },
  { title: '1x1x1 (flat chunks)', x: [2, 6, 5, 4, 3], w: [9, 6, 1, 1, 1], stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0], few: 17 * 4 * 6 },
];

async function conv(backend: Backend, x: DeviceTensor, w: DeviceTensor, b: DeviceTensor, c: Case, shape: number[],
  chunkBytes: number): Promise<Float32Array> {
  const out = poisoned(backend, shape);
  await backend.runOp('conv3d', [x, w, b], { stride: c.stride, padding_before: c.before, padding_after: c.after, algorithm: 1, chunk_bytes: chunkBytes }, [out]);
  return out.read() as Float32Array;
}

async function checkCase(t: import('ava').ExecutionContext, backend: Backend, c: Case, i: number, tolerance: number): Promise<void> {
  const xv = randn(numel(c.x), 500 + i);
  const wv = randn(numel(c.w), 600 + i, 0, 0.2);
  const bv = randn(c.w[0], 700 + i);
  const ref = conv3dRef(xv, c.x, wv, c.w, bv, c.stride, c.before, c.after);
  const x = backend.tensor(c.x, xv);
  const w = backend.tensor(c.w, wv);
  const b = backend.tensor([c.w[0]], bv);
  const whole = await conv(backend, x, w, b, c, ref.shape, 0);
  const single = await conv(backend, x, w, b, c, ref.shape, 1);
  const few = await conv(backend, x, w, b, c, ref.shape, c.few);
  t.true(relL2(whole, ref.data) <= tolerance, `unchunked vs reference: ${relL2(whole, ref.data)}`);
  t.deepEqual(single, whole, 'one slice (one output) per chunk');
  t.deepEqual(few, whole, 'a few slices per chunk');
}

cases.forEach((c, i) => {
  eachBackend(`conv3d in chunks equals the unchunked convolution bit for bit: ${c.title}`, async (t, backend) => {
    await checkCase(t, backend, c, i, 1e-5);
  });
});

// bf16 precision (native only): packed pairs of channels in bf16, on the AMX or AVX512-BF16 tile.
cases.forEach((c, i) => {
  test(`conv3d in chunks equals the unchunked convolution bit for bit at precision bf16: ${c.title}`, async (t) => {
    await withNativeBackend(t, { threads: 2, precision: 'bf16' }, (backend) => checkCase(t, backend, c, i, 1e-2));
  });
});
