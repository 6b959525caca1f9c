/**
 * The gathered convolution (conv3d algorithm 3; auto takes it for small volumes, where the flat-tap layout would be
 * mostly margin): every output of every batch item one lane, one matrix product over Cin x taps. On every backend
 * it must match the double-precision reference for the shapes the networks give it (3x3x3 at 4x5x4 with batch 2,
 * stride-2 downsampling, MONAI's end-padded downsample, output-channel tails, lanes spanning batch items) and run
 * where auto says it pays; the output is poisoned first so an unwritten voxel fails. bf16 contexts refuse it by name.
 */
import test from 'ava';
import type { Backend, DeviceTensor } from '../../ts/backend/types.js';
import { eachBackend, poisoned, withNativeBackend } from '../helpers/backends.js';
import { conv3dRef, firstDifference, maxScaledError, numel, randn, relL2 } from '../helpers/reference.js';

type Triple = [number, number, number];
interface Case { title: string; x: number[]; w: number[]; stride: Triple; before: Triple; after: Triple }

const cases: Case[] = [
  { title: '3x3x3 pad 1, 40 -> 33 at 4x5x4, batch 2', x: [2, 40, 4, 5, 4], w: [33, 40, 3, 3, 3], stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] },
  { title: '3x3x3 stride 2 pad 1, 24 -> 17 at 8x10x8, batch 2', x: [2, 24, 8, 10, 8], w: [17, 24, 3, 3, 3], stride: [2, 2, 2], before: [1, 1, 1], after: [1, 1, 1] },
  { title: '3x3x3 stride 2, end padding (0, 1), 6 -> 5 at 7x6x5', x: [1, 6, 7, 6, 5], w: [5, 6, 3, 3, 3], stride: [2, 2, 2], before: [0, 0, 0], after: [1, 1, 1] },
  { title: '3x3x3 valid, 3 -> 4 at 3x4x3', x: [3, 3, 3, 4, 3], w: [4, 3, 3, 3, 3], stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0] },
  { title: '1x3x2 kernel, pad (0, 1, 1), 5 -> 9', x: [2, 5, 4, 3, 6], w: [9, 5, 1, 3, 2], stride: [1, 1, 2], before: [0, 1, 1], after: [0, 1, 0] },
];

async function conv(backend: Backend, x: DeviceTensor, w: DeviceTensor, b: DeviceTensor, c: Case, shape: number[], algorithm: number): Promise<Float32Array> {
  const out = poisoned(backend, shape);
  await backend.runOp('conv3d', [x, w, b], { stride: c.stride, padding_before: c.before, padding_after: c.after, algorithm }, [out]);
  return out.read() as Float32Array;
}

cases.forEach((c, i) => {
  eachBackend(`conv3d gathered ${c.title}`, async (t, backend) => {
    const x = randn(numel(c.x), 900 + i), w = randn(numel(c.w), 910 + i, 0, 0.2), b = randn(c.w[0], 920 + i);
    const ref = conv3dRef(x, c.x, w, c.w, b, c.stride, c.before, c.after);
    const xt = backend.tensor(c.x, x), wt = backend.tensor(c.w, w), bt = backend.tensor([c.w[0]], b);
    const gathered = await conv(backend, xt, wt, bt, c, ref.shape, 3);
    t.true(relL2(gathered, ref.data) <= 1e-6, `gathered vs reference: relative L2 ${relL2(gathered, ref.data)}`);
    t.true(maxScaledError(gathered, ref.data, 1e-5, 1e-5) <= 1, 'every element within 1e-5 abs + 1e-5 rel of the reference');
  });
});

// wasm simd128 (no fused multiply-add) takes Winograd F(2,3) there instead (ops/conv3d_winograd.cpp winograd_tile).
eachBackend('conv3d auto gathers a small volume (128 -> 128 at 4x5x4, batch 2) and keeps the flat kernel for a large one', async (t, backend) => {
  const small: Case = { title: '', x: [2, 128, 4, 5, 4], w: [128, 128, 3, 3, 3], stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] };
  const x = randn(numel(small.x), 931), w = randn(numel(small.w), 932, 0, 0.05), b = randn(128, 933);
  const ref = conv3dRef(x, small.x, w, small.w, b, small.stride, small.before, small.after);
  const xt = backend.tensor(small.x, x), wt = backend.tensor(small.w, w), bt = backend.tensor([128], b);
  const auto = await conv(backend, xt, wt, bt, small, ref.shape, 0);
  const noFma = backend.info().isa === 'simd128';
  t.deepEqual(Array.from(auto), Array.from(await conv(backend, xt, wt, bt, small, ref.shape, noFma ? 2 : 3)),
    noFma ? 'auto and Winograd F(2,3) give the same bytes' : 'auto and gathered give the same bytes');
  t.true(relL2(auto, ref.data) <= (noFma ? 1e-5 : 1e-6));
  // 16 channels at 12^3: the flat layout's lanes are mostly outputs (12 x 14 flat positions per slice), so auto
  // runs the flat kernel, which sums the taps in another order than the gathered product.
  const large: Case = { title: '', x: [1, 16, 12, 12, 12], w: [16, 16, 3, 3, 3], stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] };
  const xl = randn(numel(large.x), 934), wl = randn(numel(large.w), 935, 0, 0.1), bl = randn(16, 936);
  const refL = conv3dRef(xl, large.x, wl, large.w, bl, large.stride, large.before, large.after);
  const [xlt, wlt, blt] = [backend.tensor(large.x, xl), backend.tensor(large.w, wl), backend.tensor([16], bl)];
  // (wasm simd128 takes Winograd F(4,3) there: 16 channels, 27 tiles.)
  const largeAlgorithm = noFma ? 4 : 1;
  t.is(firstDifference(await conv(backend, xlt, wlt, blt, large, refL.shape, 0), await conv(backend, xlt, wlt, blt, large, refL.shape, largeAlgorithm)), -1,
    noFma ? 'auto and Winograd F(4,3) give the same bytes on the large volume' : 'auto and direct give the same bytes on the large volume');
});

test('conv3d gathered is refused by name in a bf16 context', async (t) => {
  await withNativeBackend(t, { threads: 2, precision: 'bf16' }, async (backend) => {
    const c = cases[0];
    await t.throwsAsync(conv(backend, backend.tensor(c.x), backend.tensor(c.w), backend.tensor([c.w[0]]), c, [2, 33, 4, 5, 4], 3),
      { instanceOf: RangeError, message: /conv3d: algorithm 'gathered' runs fp32 only; this context computes in bf16/ });
  });
});
