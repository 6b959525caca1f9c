import { eachBackend, poisoned } from '../helpers/backends.js';
import { conv3dRef, maxScaledError, numel, randn, relL2, type ConvCase } from '../helpers/reference.js';

interface Case extends ConvCase {
  bias: boolean;
}

// Shapes chosen to hit channel-block tails (Cout 7, 33), plane widths that are
// not multiples of any tile, batch > 1, and each convolution MONAI's networks use.
const cases: Case[] = [
  { title: '3x3x3 pad 1, odd sizes, batch 2, bias', x: [2, 5, 7, 6, 9], w: [7, 5, 3, 3, 3], bias: true, stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] },
  { title: '3x3x3 pad 1, 33 output channels', x: [1, 6, 5, 4, 6], w: [33, 6, 3, 3, 3], bias: true, stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] },
  { title: '1x1x1, bias', x: [2, 6, 5, 4, 3], w: [9, 6, 1, 1, 1], bias: true, stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0] },
  { title: '1x1x1, no bias', x: [1, 16, 4, 4, 4], w: [8, 16, 1, 1, 1], bias: false, stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0] },
  { title: '3x3x3 stride 2 pad 1 (UNet downsample)', x: [1, 3, 8, 9, 7], w: [4, 3, 3, 3, 3], bias: true, stride: [2, 2, 2], before: [1, 1, 1], after: [1, 1, 1] },
  { title: '3x3x3 stride 2, end pad (0,1) (autoencoder downsample)', x: [1, 4, 8, 6, 10], w: [5, 4, 3, 3, 3], bias: true, stride: [2, 2, 2], before: [0, 0, 0], after: [1, 1, 1] },
  { title: '3x3x3 no padding, no bias', x: [1, 3, 6, 5, 7], w: [6, 3, 3, 3, 3], bias: false, stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0] },
  { title: '3x3x3 pad 1, 32 -> 32 on 12^3', x: [1, 32, 12, 12, 12], w: [32, 32, 3, 3, 3], bias: true, stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] },
  // Packed weights over 1 MiB: input channels are split into cache-sized blocks whose partial sums accumulate.
  { title: '3x3x3 pad 1, 80 -> 256, input channels in blocks, batch 2', x: [2, 80, 4, 5, 3], w: [256, 80, 3, 3, 3], bias: true, stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] },
  { title: '1x1x1, 600 -> 512', x: [1, 600, 2, 3, 5], w: [512, 600, 1, 1, 1], bias: true, stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0] },
];

cases.forEach((c, i) => {
  eachBackend(`conv3d ${c.title}`, async (t, backend) => {
    const x = randn(numel(c.x), 100 + i);
    const w = randn(numel(c.w), 200 + i, 0, 0.2);
    const b = c.bias ? randn(c.w[0], 300 + i) : null;
    const ref = conv3dRef(x, c.x, w, c.w, b, c.stride, c.before, c.after);
    const out = poisoned(backend, ref.shape);
    const y = await backend.conv3d(backend.tensor(c.x, x), backend.tensor(c.w, w), b ? backend.tensor([c.w[0]], b) : null,
      { stride: c.stride, padding: { before: c.before, after: c.after }, out });
    t.is(y, out);
    t.deepEqual([...y.shape], ref.shape);
    const got = y.read() as Float32Array;
    const err = relL2(got, ref.data);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
    // wasm simd128 runs 32 -> 32 on 12^3 with Winograd F(4,3) (from 16 tiles where there is no fused multiply-add:
    // ops/conv3d_winograd.cpp), whose rounding scales with the output's magnitude, not each element's.
    const winograd = backend.info().isa === 'simd128' && c.w[0] >= 16 && c.w[1] >= 16 && c.w[2] === 3 && c.stride[0] === 1 && c.x[2] >= 12;
    const abs = winograd ? 1e-4 * Math.sqrt(ref.data.reduce((a, v) => a + v * v, 0) / ref.data.length) : 1e-4;
    t.true(maxScaledError(got, ref.data, abs, 1e-4) <= 1, `every element within ${abs.toExponential(1)} abs + 1e-4 rel`);
  });
});

eachBackend('conv3d allocates the output when none is given and honours symmetric padding shorthand', async (t, backend) => {
  const xs = [1, 2, 4, 5, 6];
  const ws = [3, 2, 3, 3, 3];
  const x = randn(numel(xs), 7);
  const w = randn(numel(ws), 8);
  const y = await backend.conv3d(backend.tensor(xs, x), backend.tensor(ws, w), null, { padding: 1 });
  const ref = conv3dRef(x, xs, w, ws, null, [1, 1, 1], [1, 1, 1], [1, 1, 1]);
  t.deepEqual([...y.shape], ref.shape);
  t.true(relL2(y.read() as Float32Array, ref.data) <= 1e-5);
});
