import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeVolume } from '../../ts/labels/label-volume.js';
import { tensorToVolumeOrder, volumeToTensorOrder } from '../../ts/labels/voxel-order.js';
import { pythonReference, runPython } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('voxel-order.spec', ['numpy', 'nibabel']);

test('tensor (row-major) and volume (first index fastest) orders are inverse transpositions', (t) => {
  const shape = [3, 4, 5];
  const data = Float32Array.from({ length: 60 }, (_, i) => i);
  const vol = tensorToVolumeOrder(data, shape);
  // Tensor element (i, j, k) = (i * 4 + j) * 5 + k lands at i + 3 * (j + 4 * k).
  t.is(vol[1 + 3 * (2 + 4 * 3)], (1 * 4 + 2) * 5 + 3);
  t.deepEqual(volumeToTensorOrder(vol, shape), data);
  t.throws(() => tensorToVolumeOrder(data, [3, 4, 4]), { message: /60 elements do not fill a grid of shape \[3, 4, 4\]/ });
});

pythonTest('a volume written from tensor order reads in nibabel as the same row-major array (what MONAI training sees)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brain-ldm-order-'));
  try {
    const shape: [number, number, number] = [3, 4, 5];
    const tensor = Float32Array.from({ length: 60 }, (_, i) => i);
    const path = join(dir, 'v.nii.gz');
    await writeVolume(path, { data: tensorToVolumeOrder(tensor, shape), shape, affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] });
    const flat = await runPython<number[]>('import sys, json, numpy as np, nibabel as nib; print(json.dumps(np.asarray(nib.load(sys.argv[1]).dataobj).ravel(order="C").tolist()))', [path]);
    t.deepEqual(flat, Array.from(tensor));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
