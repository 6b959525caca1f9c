/**
 * The 6-neighbourhood of a voxel in a flat 3D array: flood fills, connected components and region growing all walk
 * it. Sizes are given fastest axis first, so one helper serves NIfTI order (x fastest) and tensor order (last axis
 * fastest) alike.
 */

/** Calls `visit` with the flat index of each face neighbour of voxel `v` inside a [fast, mid, slow] grid. */
export function forEachNeighbour6(v: number, fast: number, mid: number, slow: number, visit: (n: number) => void): void {
  const plane = fast * mid;
  const i = v % fast, j = Math.floor(v / fast) % mid, k = Math.floor(v / plane);
  if (i > 0) visit(v - 1);
  if (i < fast - 1) visit(v + 1);
  if (j > 0) visit(v - fast);
  if (j < mid - 1) visit(v + fast);
  if (k > 0) visit(v - plane);
  if (k < slow - 1) visit(v + plane);
}
