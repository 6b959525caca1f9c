import { eachBackend, poisoned } from '../helpers/backends.js';
import { embeddingChannelsRef, numel, randn, rng } from '../helpers/reference.js';

eachBackend('embedding_channels looks up every voxel\'s label, batch 2', async (t, backend) => {
  const idsShape = [2, 1, 3, 4, 5], rows = 7, width = 5;
  const r = rng(3);
  const ids = Float32Array.from({ length: numel(idsShape) }, () => Math.floor(r() * rows));
  ids[0] = 0; ids[1] = rows - 1;
  const table = randn(rows * width, 4);
  const out = poisoned(backend, [2, width, 3, 4, 5]);
  await backend.runOp('embedding_channels', [backend.tensor(idsShape, ids), backend.tensor([rows, width], table)], {}, [out]);
  t.deepEqual(Array.from(out.read()), Array.from(embeddingChannelsRef(ids, idsShape, table, width)));
});

for (const [bad, shown] of [[7, '7'], [-1, '-1'], [2.5, '2.5'], [NaN, 'nan']] as const) {
  eachBackend(`embedding_channels rejects id ${shown} and leaves the output unwritten`, async (t, backend) => {
    const ids = Float32Array.from([0, 1, 2, 3, 4, 5]);
    ids[4] = bad;
    const out = poisoned(backend, [1, 3, 6]);
    await t.throwsAsync(backend.runOp('embedding_channels', [backend.tensor([1, 1, 6], ids), backend.tensor([7, 3], randn(21, 5))], {}, [out]),
      { instanceOf: RangeError, message: new RegExp(`argument 'ids' holds ${shown} at element 4, expected an integer in \\[0, 7\\)`, 'i') });
    t.true((out.read() as Float32Array).every(Number.isNaN), 'nothing written');
  });
}

eachBackend('embedding_channels checks shapes by name', async (t, backend) => {
  await t.throwsAsync(backend.runOp('embedding_channels', [backend.tensor([1, 2, 4]), backend.tensor([3, 2])], {}, [backend.tensor([1, 2, 4])]),
    { instanceOf: RangeError, message: /argument 'ids'.*\[N, 1, \.\.\.\]/ });
  await t.throwsAsync(backend.runOp('embedding_channels', [backend.tensor([1, 1, 4]), backend.tensor([3, 2])], {}, [backend.tensor([1, 3, 4])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[1, 3, 4\], expected \[1, 2, 4\]/ });
  await t.throwsAsync(backend.runOp('embedding_channels', [backend.tensor([1, 1, 4]), backend.tensor([6])], {}, [backend.tensor([1, 2, 4])]),
    { instanceOf: RangeError, message: /argument 'table'/ });
});
