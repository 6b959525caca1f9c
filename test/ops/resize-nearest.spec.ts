import { eachBackend, poisoned } from '../helpers/backends.js';
import { nearestIndexRef, numel, randn, resizeNearestRef } from '../helpers/reference.js';

interface Case { title: string; x: number[]; out: number[] }

const cases: Case[] = [
  { title: 'x2 upsample, odd sizes, batch 2', x: [2, 3, 5, 3, 7], out: [10, 6, 14] },
  { title: 'downsize 16 -> 5 and upsize 7 -> 16 (float scale floor rule)', x: [1, 2, 16, 7, 16], out: [5, 16, 16] },
  { title: 'SPADE label map 96 x 128 -> 24 x 32, one dim kept', x: [1, 3, 12, 128, 9], out: [12, 32, 4] },
  { title: 'arbitrary sizes 11 -> 17, 17 -> 11, 13 -> 13', x: [2, 1, 11, 17, 13], out: [17, 11, 13] },
  { title: '2-d input [N, C, H, W]', x: [2, 2, 7, 16], out: [16, 5] },
  { title: '1-d input [N, C, L]', x: [1, 3, 29], out: [61] },
];

cases.forEach((c, i) => {
  eachBackend(`resize_nearest ${c.title}`, async (t, backend) => {
    const x = randn(numel(c.x), 600 + i);
    const outShape = [c.x[0], c.x[1], ...c.out];
    const ref = resizeNearestRef(x, c.x, c.out);
    const out = poisoned(backend, outShape);
    await backend.runOp('resize_nearest', [backend.tensor(c.x, x)], {}, [out]);
    t.deepEqual(Array.from(out.read()), Array.from(ref));
  });
});

// Sizes where PyTorch's float32 scale gives a different source index than exact rational
// floor(dst * in / out): the core must follow the float rule.
function floatRuleDifferences(): Array<[number, number]> {
  const found: Array<[number, number]> = [];
  for (let inSize = 2; inSize <= 200 && found.length < 2; inSize++)
    for (let outSize = 2; outSize <= 200 && found.length < 2; outSize++) {
      if (outSize === inSize || outSize === 2 * inSize) continue;
      for (let d = 0; d < outSize; d++)
        if (nearestIndexRef(d, inSize, outSize) !== Math.min(Math.floor((d * inSize) / outSize), inSize - 1)) {
          found.push([inSize, outSize]);
          break;
        }
    }
  return found;
}

eachBackend('resize_nearest follows the float32 scale where it differs from exact arithmetic', async (t, backend) => {
  const pairs = floatRuleDifferences();
  t.true(pairs.length > 0, 'expected sizes where float32 and exact floor differ');
  for (const [inSize, outSize] of pairs) {
    const x = Float32Array.from({ length: inSize }, (_, k) => k);
    const out = poisoned(backend, [1, 1, outSize]);
    await backend.runOp('resize_nearest', [backend.tensor([1, 1, inSize], x)], {}, [out]);
    const expected = Array.from({ length: outSize }, (_, d) => nearestIndexRef(d, inSize, outSize));
    t.deepEqual(Array.from(out.read()), expected, `${inSize} -> ${outSize}`);
  }
});

eachBackend('resize_nearest rejects mismatched batch/channels and ranks', async (t, backend) => {
  const x = backend.tensor([1, 2, 4, 4, 4]);
  await t.throwsAsync(backend.runOp('resize_nearest', [x], {}, [backend.tensor([1, 3, 8, 8, 8])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[1, 3, 8, 8, 8\], expected \[1, 2, \.\.\.\]/ });
  await t.throwsAsync(backend.runOp('resize_nearest', [x], {}, [backend.tensor([1, 2, 8, 8])]),
    { instanceOf: RangeError, message: /argument 'out'.*5 dims/ });
  await t.throwsAsync(backend.runOp('resize_nearest', [backend.tensor([4, 4])], {}, [backend.tensor([4, 4])]),
    { instanceOf: RangeError, message: /argument 'input'.*spatial dims/ });
});
