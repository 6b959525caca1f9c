import { eachBackend, poisoned } from '../helpers/backends.js';
import { layerNormChannelsRef, maxScaledError, numel, randn, relL2 } from '../helpers/reference.js';

const cases = [
  { title: 'affine, [2, 37, 29] (token tails on every vector width)', shape: [2, 37, 29], eps: 1e-5, affine: true, mean: 0, std: 1 },
  { title: 'affine, offset 300 std 0.5 (cancellation), [1, 64, 300]', shape: [1, 64, 300], eps: 1e-5, affine: true, mean: 300, std: 0.5 },
  { title: 'non-affine, 770 channels (several accumulation runs), [1, 770, 19]', shape: [1, 770, 19], eps: 1e-5, affine: false, mean: 1, std: 3 },
  { title: 'one token per batch item, [3, 5, 1]', shape: [3, 5, 1], eps: 1e-6, affine: true, mean: 0, std: 1 },
  { title: 'spatial input [N, C, D, H, W] flattened to tokens', shape: [2, 8, 3, 4, 5], eps: 1e-5, affine: true, mean: -2, std: 1 },
];

cases.forEach((c, i) => {
  eachBackend(`layer_norm_channels ${c.title}`, async (t, backend) => {
    const x = randn(numel(c.shape), 700 + i, c.mean, c.std);
    const gamma = c.affine ? randn(c.shape[1], 710 + i, 1, 0.5) : null;
    const beta = c.affine ? randn(c.shape[1], 720 + i) : null;
    const ref = layerNormChannelsRef(x, c.shape, c.eps, gamma, beta);
    const out = poisoned(backend, c.shape);
    const inputs = [backend.tensor(c.shape, x)];
    if (gamma && beta) inputs.push(backend.tensor([c.shape[1]], gamma), backend.tensor([c.shape[1]], beta));
    await backend.runOp('layer_norm_channels', inputs, { eps: c.eps }, [out]);
    const got = out.read() as Float32Array;
    const err = relL2(got, ref);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
    t.true(maxScaledError(got, ref, 1e-5, 1e-4) <= 1);
  });
});

eachBackend('layer_norm_channels default eps is 1e-5 and a constant token normalises to beta', async (t, backend) => {
  const shape = [1, 6, 3];
  const x = new Float32Array(18).fill(4);
  const beta = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const out = poisoned(backend, shape);
  await backend.runOp('layer_norm_channels', [backend.tensor(shape, x), backend.tensor([6], new Float32Array(6).fill(2)), backend.tensor([6], beta)], {}, [out]);
  t.deepEqual(Array.from(out.read()), [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6]);
});

eachBackend('layer_norm_channels rejects bad weight, eps and rank by name', async (t, backend) => {
  const x = backend.tensor([1, 4, 5]);
  const y = backend.tensor([1, 4, 5]);
  await t.throwsAsync(backend.runOp('layer_norm_channels', [x, backend.tensor([3]), backend.tensor([4])], {}, [y]),
    { instanceOf: RangeError, message: /argument 'weight' has shape \[3\], expected \[4\]/ });
  await t.throwsAsync(backend.runOp('layer_norm_channels', [x, backend.tensor([4])], {}, [y]), { instanceOf: RangeError, message: /weight and bias/ });
  await t.throwsAsync(backend.runOp('layer_norm_channels', [x], { eps: 0 }, [y]), { instanceOf: RangeError, message: /argument 'eps'/ });
  await t.throwsAsync(backend.runOp('layer_norm_channels', [backend.tensor([4, 5])], {}, [backend.tensor([4, 5])]), { instanceOf: RangeError, message: /argument 'input'/ });
});
