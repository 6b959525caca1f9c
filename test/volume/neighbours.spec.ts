/** forEachNeighbour6 (ts/volume/neighbours.ts): face neighbours only, none across an edge of the grid. */
import test from 'ava';
import { forEachNeighbour6 } from '../../ts/volume/neighbours.js';

const at = (i: number, j: number, k: number, fast: number, mid: number) => i + fast * (j + mid * k);
const neighbours = (v: number, fast: number, mid: number, slow: number) => {
  const out: number[] = [];
  forEachNeighbour6(v, fast, mid, slow, (n) => out.push(n));
  return out.sort((a, b) => a - b);
};

test('an interior voxel has its six face neighbours; corners and edges lose those past the grid', (t) => {
  const [F, M, S] = [4, 3, 5];
  t.deepEqual(neighbours(at(1, 1, 2, F, M), F, M, S),
    [at(1, 1, 1, F, M), at(1, 0, 2, F, M), at(0, 1, 2, F, M), at(2, 1, 2, F, M), at(1, 2, 2, F, M), at(1, 1, 3, F, M)]);
  t.deepEqual(neighbours(0, F, M, S), [at(1, 0, 0, F, M), at(0, 1, 0, F, M), at(0, 0, 1, F, M)]);
  // The last voxel of a row does not wrap to the next row's first.
  t.deepEqual(neighbours(at(F - 1, 0, 0, F, M), F, M, S), [at(F - 2, 0, 0, F, M), at(F - 1, 1, 0, F, M), at(F - 1, 0, 1, F, M)]);
  t.deepEqual(neighbours(F * M * S - 1, F, M, S), [at(F - 1, M - 1, S - 2, F, M), at(F - 1, M - 2, S - 1, F, M), at(F - 2, M - 1, S - 1, F, M)]);
  t.deepEqual(neighbours(0, 1, 1, 1), [], 'a one-voxel grid');
});
