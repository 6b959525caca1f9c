/** Reference label maps on a generator's grid, read from a folder (calibrate and label-presence take them). */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readLabelVolume } from './label-volume.js';

export interface ReferenceMaps {
  files: string[];
  /** Label values per voxel, volume order (as read). */
  maps: Array<ArrayLike<number>>;
}

/** Every *.nii.gz / *.nii in `dir`, sorted by name; each must have the grid's shape. `option` names the flag in errors. */
export async function readReferenceMaps(dir: string, shape: readonly number[], option: string): Promise<ReferenceMaps> {
  const entries = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new RangeError(`${option} ${dir}: not a directory`);
    throw e;
  });
  const files = entries.filter((f) => f.endsWith('.nii.gz') || f.endsWith('.nii')).sort().map((f) => join(dir, f));
  if (files.length === 0) throw new RangeError(`${option} ${dir}: no label maps (*.nii.gz, *.nii) in it`);
  const maps: Array<ArrayLike<number>> = [];
  for (const file of files) {
    const v = await readLabelVolume(file);
    if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i]))
      throw new RangeError(`${file}: shape [${v.shape.join(', ')}] is not the generator's grid [${shape.join(', ')}] (prepare it with brain-ldm prepare-labels)`);
    maps.push(v.data);
  }
  return { files, maps };
}
