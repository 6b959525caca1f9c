/**
 * Winograd F(2x2x2, 3x3x3) convolution (conv3d attribute algorithm: 0 auto, 1 direct, 2 winograd).
 * On every backend it must match the double-precision reference and the direct kernel to relative
 * L2 <= 1e-4 (issue 6), including odd output sizes (half tiles), every padding MONAI uses, batch 2
 * (groups of tiles spanning batch items), output-channel tails, small volumes (one group, in phases) and
 * large ones (per-thread blocks of tile rows); the output is poisoned first so an unwritten voxel fails.
 */
import { eachBackend, poisoned } from '../helpers/backends.js';
import { conv3dRef, maxScaledError, numel, randn, relL2 } from '../helpers/reference.js';
import type { Backend, DeviceTensor } from '../../ts/backend/types.js';

type Triple = [number, number, number];
interface Case { title: string; x: number[]; cout: number; bias: boolean; before: Triple; after: Triple }

const cases: Case[] = [
  { title: 'pad 1, odd sizes, batch 2, 5 -> 7', x: [2, 5, 7, 6, 9], cout: 7, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: 'no padding (valid), 3 -> 6', x: [1, 3, 6, 5, 7], cout: 6, bias: false, before: [0, 0, 0], after: [0, 0, 0] },
  { title: 'asymmetric padding (0, 1), 4 -> 5', x: [1, 4, 8, 6, 10], cout: 5, bias: true, before: [0, 0, 0], after: [1, 1, 1] },
  { title: 'one voxel deep, 1 -> 1', x: [1, 1, 1, 4, 3], cout: 1, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: 'pad 1, 33 output channels (block tail), batch 2', x: [2, 20, 5, 4, 6], cout: 33, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  // 64 tiles per depth slice and 16 channels: one slice per group, so 8 groups per batch item.
  { title: 'pad 1, 16 -> 16 on 16^3, batch 2 (many tile groups)', x: [2, 16, 16, 16, 16], cout: 16, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: 'pad 1, 48 -> 40 on 5x9x7 (odd tiles in every dim)', x: [1, 48, 5, 9, 7], cout: 40, bias: false, before: [1, 1, 1], after: [1, 1, 1] },
  // Enough tile rows for the fused schedule (blocks of 5-9 tile rows, each thread transforming, multiplying and
  // transforming back its own): blocks start and end inside depth slices and across the two batch items; odd
  // input channels (a bf16 pair tail) and an output-channel block tail.
  { title: 'pad 1, 65 -> 9 on 15x19x13, batch 2 (fused blocks of tile rows)', x: [2, 65, 15, 19, 13], cout: 9, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
];

async function conv(backend: Backend, x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, c: Case, shape: number[],
  algorithm: number): Promise<Float32Array> {
  const out = poisoned(backend, shape);
  await backend.runOp('conv3d', b ? [x, w, b] : [x, w], { padding_before: c.before, padding_after: c.after, algorithm }, [out]);
  return out.read() as Float32Array;
}

cases.forEach((c, i) => {
  eachBackend(`conv3d winograd ${c.title}`, async (t, backend) => {
    const ws = [c.cout, c.x[1], 3, 3, 3];
    const x = randn(numel(c.x), 500 + i);
    const w = randn(numel(ws), 600 + i, 0, 0.2);
    const b = c.bias ? randn(c.cout, 700 + i) : null;
    const ref = conv3dRef(x, c.x, w, ws, b, [1, 1, 1], c.before, c.after);
    const xt = backend.tensor(c.x, x), wt = backend.tensor(ws, w), bt = b ? backend.tensor([c.cout], b) : null;
    const wino = await conv(backend, xt, wt, bt, c, ref.shape, 2);
    const direct = await conv(backend, xt, wt, bt, c, ref.shape, 1);
    const errRef = relL2(wino, ref.data);
    t.true(errRef <= 1e-5, `winograd vs reference: relative L2 ${errRef}`);
    t.true(maxScaledError(wino, ref.data, 1e-4, 1e-4) <= 1, 'every element within 1e-4 abs + 1e-4 rel of the reference');
    const errDirect = relL2(wino, direct);
    t.true(errDirect <= 1e-4, `winograd vs direct: relative L2 ${errDirect}`);
    // The attribute must really select another computation: with sums over 27 * Cin random terms the two
    // round differently somewhere (a Winograd path that silently ran the direct kernel would be bit-identical).
    if (c.x[1] * 27 >= 81) t.true(wino.some((v, j) => v !== direct[j]), 'winograd and direct results are bit-identical');
  });
});

eachBackend('conv3d auto takes Winograd for 3x3x3 stride 1 and matches the reference', async (t, backend) => {
  const xs = [2, 64, 6, 8, 6], ws = [64, 64, 3, 3, 3];
  const x = randn(numel(xs), 801), w = randn(numel(ws), 802, 0, 0.1), b = randn(64, 803);
  const ref = conv3dRef(x, xs, w, ws, b, [1, 1, 1], [1, 1, 1], [1, 1, 1]);
  const c: Case = { title: '', x: xs, cout: 64, bias: true, before: [1, 1, 1], after: [1, 1, 1] };
  const xt = backend.tensor(xs, x), wt = backend.tensor(ws, w), bt = backend.tensor([64], b);
  const auto = await conv(backend, xt, wt, bt, c, ref.shape, 0);
  const wino = await conv(backend, xt, wt, bt, c, ref.shape, 2);
  const direct = await conv(backend, xt, wt, bt, c, ref.shape, 1);
  t.deepEqual(Array.from(auto), Array.from(wino), 'auto and winograd give the same bytes');
  t.true(auto.some((v, j) => v !== direct[j]), 'auto ran the direct kernel');
  t.true(relL2(auto, ref.data) <= 1e-5);
});

eachBackend('conv3d winograd rejects kernels it cannot compute and bad algorithm values, by name', async (t, backend) => {
  const x = backend.tensor([1, 4, 6, 6, 6], randn(864, 9));
  const strided = backend.tensor([1, 4, 3, 3, 3]);
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 3, 3, 3])], { stride: 2, padding: 1, algorithm: 2 }, [strided]),
    { instanceOf: RangeError, message: /conv3d: algorithm 'winograd' needs a 3x3x3 kernel with stride 1, got kernel \[4, 4, 3, 3, 3\] and stride \(2, 2, 2\)/ });
  const pointwise = backend.tensor([1, 4, 6, 6, 6]);
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 1, 1, 1])], { algorithm: 2 }, [pointwise]),
    { instanceOf: RangeError, message: /algorithm 'winograd' needs a 3x3x3 kernel/ });
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 3, 3, 3])], { padding: 1, algorithm: 4 }, [pointwise]),
    { instanceOf: RangeError, message: /conv3d: attribute 'algorithm' must be an integer in \[0, 3\], got 4/ });
});
