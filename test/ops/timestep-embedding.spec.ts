import { eachBackend, poisoned } from '../helpers/backends.js';
import { maxScaledError, timestepEmbeddingRef } from '../helpers/reference.js';

for (const dim of [32, 33, 256, 1, 2]) {
  eachBackend(`timestep_embedding dim ${dim}: [cos, sin], t = 0 ... 999`, async (t, backend) => {
    const ts = Float32Array.from([0, 1, 500.5, 999]);
    const ref = timestepEmbeddingRef(ts, dim);
    const out = poisoned(backend, [ts.length, dim]);
    await backend.runOp('timestep_embedding', [backend.tensor([ts.length], ts)], { dim }, [out]);
    const got = out.read() as Float32Array;
    t.true(maxScaledError(got, ref, 1.2e-7, 1.2e-7) <= 1, `max scaled error ${maxScaledError(got, ref, 1.2e-7, 1.2e-7)}`);
    const half = Math.floor(dim / 2);
    // t = 0: cos 0 = 1 in the first half, sin 0 = 0 in the second, and the odd pad is 0.
    t.deepEqual(Array.from(got.subarray(0, dim)), [...Array(half).fill(1), ...Array(half).fill(0), ...(dim % 2 ? [0] : [])]);
    if (dim % 2) for (let b = 0; b < ts.length; b++) t.is(got[b * dim + dim - 1], 0, 'odd dim is zero-padded');
  });
}

eachBackend('timestep_embedding checks dim against the output and the timestep rank', async (t, backend) => {
  const ts = backend.tensor([2], Float32Array.from([1, 2]));
  await t.throwsAsync(backend.runOp('timestep_embedding', [ts], { dim: 8 }, [backend.tensor([2, 9])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[2, 9\], expected \[2, 8\]/ });
  await t.throwsAsync(backend.runOp('timestep_embedding', [ts], {}, [backend.tensor([2, 8])]), { instanceOf: RangeError, message: /missing attribute 'dim'/ });
  await t.throwsAsync(backend.runOp('timestep_embedding', [backend.tensor([2, 1])], { dim: 8 }, [backend.tensor([2, 8])]),
    { instanceOf: RangeError, message: /argument 'timesteps'/ });
});
