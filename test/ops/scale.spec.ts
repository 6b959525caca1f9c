import { eachBackend, poisoned } from '../helpers/backends.js';
import { randn } from '../helpers/reference.js';

for (const n of [1, 13, 70001]) {
  eachBackend(`scale on ${n} elements (latent scale factor)`, async (t, backend) => {
    const x = randn(n, 40 + n, 0, 4);
    const factor = 0.18215;
    const out = poisoned(backend, [n]);
    await backend.runOp('scale', [backend.tensor([n], x)], { factor }, [out]);
    const f = Math.fround(factor);
    t.deepEqual(Array.from(out.read()), Array.from(x, (v) => Math.fround(v * f)));
  });
}

eachBackend('scale needs a finite factor', async (t, backend) => {
  const x = backend.tensor([3]);
  await t.throwsAsync(backend.runOp('scale', [x], {}, [backend.tensor([3])]), { instanceOf: RangeError, message: /missing attribute 'factor'/ });
  await t.throwsAsync(backend.runOp('scale', [x], { factor: NaN }, [backend.tensor([3])]), { instanceOf: RangeError, message: /'factor'/ });
  await t.throwsAsync(backend.runOp('scale', [x], { factor: [1, 2] }, [backend.tensor([3])]), { instanceOf: RangeError, message: /attribute 'factor' must hold one number/ });
});
