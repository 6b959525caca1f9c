/**
 * Winograd F(2x2x2, 3x3x3) and F(4x4x4, 3x3x3) convolution (conv3d attribute algorithm: 0 auto, 1 direct,
 * 2 winograd, 4 winograd4). On every backend each must match the double-precision reference and the direct kernel
 * to relative L2 <= 1e-4 (issue 6; F(2,3) to 1e-5), including odd output sizes (partial tiles), every padding MONAI
 * uses and wider ones, batch 2 (groups of tiles spanning batch items), output-channel tails, 1 to 130 channels,
 * small volumes (one group, in phases) and large ones (per-thread blocks of tile rows, their products by
 * output-channel block or, where V outgrows L2, by point); the output is poisoned first so an unwritten voxel fails.
 */
import test from 'ava';
import { eachBackend, poisoned, withNativeBackend } from '../helpers/backends.js';
import { conv3dRef, firstDifference, maxScaledError, numel, randn, relL2 } from '../helpers/reference.js';
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
  // 130 input channels: a micro-tile's V outgrows L2, so the blocks run their products point by point.
  { title: 'pad 1, 130 -> 9 on 12^3, batch 2 (fused blocks, products by point)', x: [2, 130, 12, 12, 12], cout: 9, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
];

async function conv(backend: Backend, x: DeviceTensor, w: DeviceTensor, b: DeviceTensor | null, c: Case, shape: number[],
  algorithm: number): Promise<Float32Array> {
  const out = poisoned(backend, shape);
  await backend.runOp('conv3d', b ? [x, w, b] : [x, w], { padding_before: c.before, padding_after: c.after, algorithm }, [out]);
  return out.read() as Float32Array;
}

// The reference of a case is the same on every backend: made once.
const refs = new Map<string, ReturnType<typeof conv3dRef>>();
function reference(key: string, x: Float32Array, c: Case, w: Float32Array, ws: number[], b: Float32Array | null) {
  if (!refs.has(key)) refs.set(key, conv3dRef(x, c.x, w, ws, b, [1, 1, 1], c.before, c.after));
  return refs.get(key)!;
}

/** One Winograd variant (algorithm 2 or 4) against the fp64 reference and the direct kernel; seeds differ per variant. */
function checkWinograd(name: string, list: Case[], alg: number, seed: number, tol: { weight: (cin: number) => number; elem: number; ref: number }) {
  list.forEach((c, i) => {
    eachBackend(`conv3d ${name} ${c.title}`, async (t, backend) => {
      const ws = [c.cout, c.x[1], 3, 3, 3];
      const x = randn(numel(c.x), seed + i);
      const w = randn(numel(ws), seed + 100 + i, 0, tol.weight(c.x[1]));
      const b = c.bias ? randn(c.cout, seed + 200 + i) : null;
      const ref = reference(`f${alg === 4 ? 4 : 2}/${i}`, x, c, w, ws, b);
      const xt = backend.tensor(c.x, x), wt = backend.tensor(ws, w), bt = b ? backend.tensor([c.cout], b) : null;
      const wino = await conv(backend, xt, wt, bt, c, ref.shape, alg);
      const direct = await conv(backend, xt, wt, bt, c, ref.shape, 1);
      const errRef = relL2(wino, ref.data);
      t.true(errRef <= tol.ref, `${name} vs reference: relative L2 ${errRef}`);
      t.true(maxScaledError(wino, ref.data, tol.elem, tol.elem) <= 1, `every element within ${tol.elem} abs + ${tol.elem} rel of the reference`);
      const errDirect = relL2(wino, direct);
      t.true(errDirect <= 1e-4, `${name} vs direct: relative L2 ${errDirect}`);
      // The attribute must really select another computation: with sums over 27 * Cin random terms the two
      // round differently somewhere (a Winograd path that silently ran the direct kernel would be bit-identical).
      if (c.x[1] * 27 >= 81) t.true(wino.some((v, j) => v !== direct[j]), `${name} and direct results are bit-identical`);
    });
  });
}

checkWinograd('winograd', cases, 2, 500, { weight: () => 0.2, elem: 1e-4, ref: 1e-5 });

// F(4,3): 4x4x4 output tiles from 6x6x6 windows. Output sizes not divisible by 4 leave partial tiles on every edge;
// wide and one-sided padding moves the windows' zeros; channel counts from 1 to 130 cover input-channel rows of one
// value and output-channel block tails; the larger volumes give enough tile rows for per-thread blocks (24 input
// channels: by output-channel block, 65: by point) where small ones run as one group in phases.
const cases4: Case[] = [
  { title: 'pad 1, outputs 7x6x9, batch 2, 5 -> 7', x: [2, 5, 7, 6, 9], cout: 7, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: 'no padding (valid), outputs 7x5x8, 3 -> 6', x: [1, 3, 9, 7, 10], cout: 6, bias: false, before: [0, 0, 0], after: [0, 0, 0] },
  { title: 'asymmetric padding (0, 1), 4 -> 5', x: [1, 4, 8, 6, 10], cout: 5, bias: true, before: [0, 0, 0], after: [1, 1, 1] },
  { title: 'padding (2, 0, 3) before and (0, 2, 1) after, 2 -> 3', x: [1, 2, 5, 6, 4], cout: 3, bias: true, before: [2, 0, 3], after: [0, 2, 1] },
  { title: 'one voxel deep, 1 -> 1', x: [1, 1, 1, 4, 3], cout: 1, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '1 -> 130 on 6x5x7, batch 2', x: [2, 1, 6, 5, 7], cout: 130, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '130 -> 1 on 5x7x6', x: [1, 130, 5, 7, 6], cout: 1, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '20 -> 33 (block tail) on 5x4x6, batch 2', x: [2, 20, 5, 4, 6], cout: 33, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '64 -> 65 on 9x10x11', x: [1, 64, 9, 10, 11], cout: 65, bias: false, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '128 -> 128 on 8x10x8, batch 2', x: [2, 128, 8, 10, 8], cout: 128, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '24 -> 16 on 24x28x20, batch 2 (fused blocks by output-channel block)', x: [2, 24, 24, 28, 20], cout: 16, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
  { title: '65 -> 9 on 23x27x22, batch 2 (fused blocks by point)', x: [2, 65, 23, 27, 22], cout: 9, bias: true, before: [1, 1, 1], after: [1, 1, 1] },
];

checkWinograd('winograd4', cases4, 4, 1500, { weight: (cin) => 1 / Math.sqrt(27 * cin), elem: 1e-3, ref: 1e-4 });

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

// Index of the first element whose bits differ, or -1 (t.deepEqual on arrays this long takes minutes).
// Auto's choice between the tile sizes (winograd_tile in ops/conv3d_winograd.cpp): F(4,3) for 96 -> 96 at 16^3
// (64 tiles of 4^3, products ahead of the transforms), F(2,3) for 128 -> 128 at 8x10x8 with batch 2 (24 tiles, too
// few lanes for F(4,3)'s larger weight transform). wasm simd128 has no fused multiply-add, so its products cost
// twice and F(4,3) pays from 16 tiles: it takes F(4,3) at 8x10x8 too.
eachBackend('conv3d auto takes F(4,3) where it pays and F(2,3) on small volumes', async (t, backend) => {
  const big: Case = { title: '', x: [1, 96, 16, 16, 16], cout: 96, bias: true, before: [1, 1, 1], after: [1, 1, 1] };
  const ws = [96, 96, 3, 3, 3];
  const x = randn(numel(big.x), 811), w = randn(numel(ws), 812, 0, 1 / Math.sqrt(27 * 96)), b = randn(96, 813);
  const xt = backend.tensor(big.x, x), wt = backend.tensor(ws, w), bt = backend.tensor([96], b);
  const shape = [1, 96, 16, 16, 16];
  const auto = await conv(backend, xt, wt, bt, big, shape, 0);
  t.is(firstDifference(auto, await conv(backend, xt, wt, bt, big, shape, 4)), -1, 'auto and winograd4 give the same bytes');

  const small: Case = { title: '', x: [2, 128, 8, 10, 8], cout: 128, bias: false, before: [1, 1, 1], after: [1, 1, 1] };
  const ws2 = [128, 128, 3, 3, 3];
  const xs = backend.tensor(small.x, randn(numel(small.x), 814)), w2 = backend.tensor(ws2, randn(numel(ws2), 815, 0, 0.02));
  const shape2 = [2, 128, 8, 10, 8];
  const smallTile = backend.info().isa === 'simd128' ? 4 : 2;
  t.is(firstDifference(await conv(backend, xs, w2, null, small, shape2, 0), await conv(backend, xs, w2, null, small, shape2, smallTile)), -1,
    `auto and F(${smallTile},3) give the same bytes at 8x10x8`);
});

// Few tiles (winograd_min_tiles): on one thread Winograd pays from 32 tiles, where two threads making U every call
// (runOp) keep the direct or gathered convolution below 64: a narrow 32 -> 32 layer at 12x16x12 (36 tiles of 4^3)
// takes F(4,3), and 64 -> 64 at 6x8x6 (36 tiles of 2^3) takes F(2,3). One thread also takes F(4,3) over F(2,3) from
// 32 tiles: 64 -> 64 at 12x16x12 (36 tiles of 4^3; two threads: F(2,3)). A bf16 context takes the fp32 F(4,3) on one
// thread too (its F(2,3) case is bf16 products, not checked here).
test('conv3d auto on one thread takes Winograd and F(4,3) from 32 tiles, two threads not below 64 (native)', async (t) => {
  const cases: Array<{ c: Case; alg: number }> = [
    { c: { title: '', x: [1, 32, 12, 16, 12], cout: 32, bias: true, before: [1, 1, 1], after: [1, 1, 1] }, alg: 4 },
    { c: { title: '', x: [1, 64, 6, 8, 6], cout: 64, bias: true, before: [1, 1, 1], after: [1, 1, 1] }, alg: 2 },
    { c: { title: '', x: [1, 64, 12, 16, 12], cout: 64, bias: true, before: [1, 1, 1], after: [1, 1, 1] }, alg: 4 },
  ];
  for (const [threads, precision] of [[1, 'fp32'], [2, 'fp32'], [1, 'bf16'], [2, 'bf16']] as const) {
    await withNativeBackend(t, { threads, precision }, async (backend) => {
      for (const [i, { c, alg }] of cases.entries()) {
        if (precision === 'bf16' && alg === 2) continue;
        const ws = [c.cout, c.x[1], 3, 3, 3];
        const xt = backend.tensor(c.x, randn(numel(c.x), 871 + i)), bt = backend.tensor([c.cout], randn(c.cout, 881 + i));
        const wt = backend.tensor(ws, randn(numel(ws), 891 + i, 0, 1 / Math.sqrt(27 * c.x[1])));
        const auto = await conv(backend, xt, wt, bt, c, c.x, 0), wino = await conv(backend, xt, wt, bt, c, c.x, alg);
        const where = `${precision}, ${c.x[1]} channels at ${c.x.slice(2).join('x')}`;
        if (threads === 1) t.is(firstDifference(auto, wino), -1, `one thread, ${where}: the F(${alg},3) bytes`);
        else t.not(firstDifference(auto, wino), -1, `two threads, ${where}: not F(${alg},3)`);
        t.true(relL2(auto, wino) <= (precision === 'bf16' ? 1e-2 : 1e-5));
      }
    });
  }
});

// F(4,3) computes in fp32 whatever the context's precision (conv3d_winograd.cpp), and a bf16 context takes it where an
// fp32 one does (conv3d.cpp winograd_tile_for: faster than the bf16 products there, with fp32's error). Elsewhere
// auto must run what bf16 allows: F(2,3) (dot-product kernels) or direct (AMX). Which bf16 kernels a process uses is
// fixed by its first bf16 context (AMX where the CPU has it, unless BRAIN_LDM_BF16_KERNELS was set by then).
test('conv3d in a bf16 context takes fp32 F(4,3) where fp32 does, and bf16 products elsewhere', async (t) => {
  const big: Case = { title: '', x: [1, 96, 16, 16, 16], cout: 96, bias: false, before: [1, 1, 1], after: [1, 1, 1] };
  const small: Case = { title: '', x: [2, 128, 8, 10, 8], cout: 128, bias: false, before: [1, 1, 1], after: [1, 1, 1] };
  const inputs = (c: Case, seed: number) => ({ x: randn(numel(c.x), seed), w: randn(c.cout * c.x[1] * 27, seed + 1, 0, 0.02) });
  const bigIn = inputs(big, 821), smallIn = inputs(small, 831);
  const run = async (backend: Backend, c: Case, d: { x: Float32Array; w: Float32Array }, algorithm: number) =>
    conv(backend, backend.tensor(c.x, d.x), backend.tensor([c.cout, c.x[1], 3, 3, 3], d.w), null, c, c.x, algorithm);
  let fp32Big = new Float32Array(0), fp32Small = new Float32Array(0);
  await withNativeBackend(t, { threads: 2, precision: 'fp32' }, async (backend) => {
    fp32Big = await run(backend, big, bigIn, 4);
    fp32Small = await run(backend, small, smallIn, 0);
  });
  await withNativeBackend(t, { threads: 2, precision: 'bf16' }, async (backend) => {
    t.is(firstDifference(await run(backend, big, bigIn, 0), fp32Big), -1, 'auto: the fp32 F(4,3) bytes');
    t.is(firstDifference(await run(backend, big, bigIn, 4), fp32Big), -1, 'winograd4 asked for: the fp32 F(4,3) bytes');
    const auto = await run(backend, small, smallIn, 0);
    const f2 = await run(backend, small, smallIn, 2), direct = await run(backend, small, smallIn, 1);
    t.true(firstDifference(auto, f2) === -1 || firstDifference(auto, direct) === -1, 'auto at 8x10x8: the bytes of bf16 F(2,3) or of the bf16 direct convolution');
    t.true(firstDifference(auto, fp32Small) !== -1, 'which are not fp32\'s');
    t.true(relL2(auto, fp32Small) < 1e-2);
  });
});

// A block's last micro-tile runs on a narrower kernel (conv_tile_part_fn: whole vectors of lanes, not a whole tile),
// and every lane sums the same products in the same order whatever the tile width. So a batch item gives the same
// bytes alone (its lanes from lane 0) as in a batch of two (the second item's lanes start mid-tile, and the tiles
// end elsewhere): 80 F(2,3) tiles per item at 8x10x8 are 1 2/3 tiles of 48 AVX-512 lanes alone and 3 1/3 in the
// batch, 27 F(4,3) tiles at 12^3 are 9/16 of a tile alone. A kernel that differed with its width, or a partial tile
// that left lanes unwritten, would show here.
function splitBatchCase(precision: 'fp32' | 'bf16', backendName: string) {
  return async (t: import('ava').ExecutionContext, backend: Backend) => {
    const shapes: Array<{ x: number[]; alg: number }> = [{ x: [2, 64, 8, 10, 8], alg: 2 }, { x: [2, 24, 12, 12, 12], alg: 4 }];
    for (const [i, s] of shapes.entries()) {
      if (precision === 'bf16' && s.alg === 4) continue;  // F(4,3) computes in fp32 in every context
      const c: Case = { title: '', x: s.x, cout: s.x[1], bias: true, before: [1, 1, 1], after: [1, 1, 1] };
      const ws = [c.cout, c.x[1], 3, 3, 3];
      const x = randn(numel(c.x), 841 + i), w = randn(numel(ws), 851 + i, 0, 1 / Math.sqrt(27 * c.x[1])), b = randn(c.cout, 861 + i);
      const wt = backend.tensor(ws, w), bt = backend.tensor([c.cout], b);
      const both = await conv(backend, backend.tensor(c.x, x), wt, bt, c, c.x, s.alg);
      const one = [1, ...c.x.slice(1)], half = numel(one);
      for (let n = 0; n < 2; n++) {
        const alone = await conv(backend, backend.tensor(one, x.subarray(n * half, (n + 1) * half)), wt, bt, { ...c, x: one }, one, s.alg);
        t.is(firstDifference(alone, both.subarray(n * half, (n + 1) * half)), -1,
          `${backendName} ${precision} F(${s.alg},3) ${c.x.slice(1).join('x')}: item ${n} alone and in the batch give the same bytes`);
      }
    }
  };
}
eachBackend('conv3d winograd: a lane\'s bytes do not depend on the micro-tile width that computed it', async (t, backend) =>
  splitBatchCase('fp32', backend.info().isa)(t, backend));
test('conv3d winograd in a bf16 context: a lane\'s bytes do not depend on the micro-tile width', async (t) => {
  await withNativeBackend(t, { threads: 2, precision: 'bf16' }, (backend) => splitBatchCase('bf16', 'native')(t, backend));
});

eachBackend('conv3d winograd rejects kernels it cannot compute and bad algorithm values, by name', async (t, backend) => {
  const x = backend.tensor([1, 4, 6, 6, 6], randn(864, 9));
  const strided = backend.tensor([1, 4, 3, 3, 3]);
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 3, 3, 3])], { stride: 2, padding: 1, algorithm: 2 }, [strided]),
    { instanceOf: RangeError, message: /conv3d: algorithm 'winograd' needs a 3x3x3 kernel with stride 1, got kernel \[4, 4, 3, 3, 3\] and stride \(2, 2, 2\)/ });
  const pointwise = backend.tensor([1, 4, 6, 6, 6]);
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 1, 1, 1])], { algorithm: 2 }, [pointwise]),
    { instanceOf: RangeError, message: /algorithm 'winograd' needs a 3x3x3 kernel/ });
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 3, 3, 3])], { stride: 2, padding: 1, algorithm: 4 }, [strided]),
    { instanceOf: RangeError, message: /conv3d: algorithm 'winograd4' needs a 3x3x3 kernel with stride 1, got kernel \[4, 4, 3, 3, 3\] and stride \(2, 2, 2\)/ });
  await t.throwsAsync(backend.runOp('conv3d', [x, backend.tensor([4, 4, 3, 3, 3])], { padding: 1, algorithm: 5 }, [pointwise]),
    { instanceOf: RangeError, message: /conv3d: attribute 'algorithm' must be an integer in \[0, 4\], got 5/ });
});
