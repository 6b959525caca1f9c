/**
 * gaussianNoise: (seed, sampleIndex, step) -> random_normal (seed, stream, offset). One sample's
 * noise at one step regenerates alone and equals the same slice of a bigger draw.
 */
import test from 'ava';
import { eachBackend } from '../helpers/backends.js';
import { gaussianNoise, noiseAttributes } from '../../ts/random/noise.js';

test('noiseAttributes: 64-bit seed halves, stream = sampleIndex, offset = step * numel', (t) => {
  t.deepEqual(noiseAttributes([2, 3, 4], { seed: 0x0123456789abcdefn, sampleIndex: 5, step: 7 }),
    { seed_hi: 0x01234567, seed_lo: 0x89abcdef, stream: 5, offset: 168 });
  t.deepEqual(noiseAttributes([10], { seed: 42, sampleIndex: 0 }), { seed_hi: 0, seed_lo: 42, stream: 0, offset: 0 });
  t.throws(() => noiseAttributes([4], { seed: -1, sampleIndex: 0 }), { instanceOf: RangeError, message: /'seed'/ });
  t.throws(() => noiseAttributes([4], { seed: 1n << 64n, sampleIndex: 0 }), { instanceOf: RangeError, message: /'seed'/ });
  t.throws(() => noiseAttributes([4], { seed: 0.5, sampleIndex: 0 }), { instanceOf: TypeError, message: /'seed'/ });
  t.throws(() => noiseAttributes([4], { seed: 1, sampleIndex: 1.5 }), { instanceOf: RangeError, message: /'sampleIndex'/ });
  t.throws(() => noiseAttributes([2 ** 30, 2 ** 20], { seed: 1, sampleIndex: 0, step: 8 }), { instanceOf: RangeError, message: /2\^53/ });
});

eachBackend('gaussianNoise: a step regenerates alone, samples and steps differ', async (t, backend) => {
  const shape = [1, 3, 5, 6, 7];
  const n = 630;  // numel(shape)
  const seed = 20251122n;
  const step2 = (await gaussianNoise(backend, shape, { seed, sampleIndex: 4, step: 2 })).read() as Float32Array;
  // The same bits as elements [2n, 3n) of one long draw of stream 4.
  const long = (await gaussianNoise(backend, [3 * n], { seed, sampleIndex: 4 })).read() as Float32Array;
  t.deepEqual(Array.from(step2), Array.from(long.subarray(2 * n, 3 * n)));
  const again = backend.tensor(shape);
  await gaussianNoise(backend, shape, { seed, sampleIndex: 4, step: 2 }, again);
  t.deepEqual(Array.from(again.read() as Float32Array), Array.from(step2));
  const other = (await gaussianNoise(backend, shape, { seed, sampleIndex: 5, step: 2 })).read() as Float32Array;
  t.true(other.some((v, i) => v !== step2[i]));
  await t.throwsAsync(gaussianNoise(backend, shape, { seed, sampleIndex: 0 }, backend.tensor([n])), { instanceOf: RangeError, message: /'out' has shape/ });
});
