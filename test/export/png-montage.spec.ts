import test from 'ava';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// An independent decoder (checks chunk CRCs and the zlib stream) for what our encoder writes.
import pngjs from 'pngjs';
import { FREESURFER_COLORS } from '../../ts/export/freesurfer-colors.js';
import { renderMontage, renderMontageRgb, writeMontagePng } from '../../ts/export/png-montage.js';
import { writeNifti } from '../../ts/io/nifti.js';
import { readLabelVolume, reorient, type Volume } from '../../ts/labels/label-volume.js';
import { mapToSynthSeg, SYNTHSEG_LABELS, synthSegIndex } from '../../ts/labels/synthseg-labels.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { sharedData } from '../helpers/shared-data.js';
import { pythonReference, runPython } from '../helpers/python-reference.js';

const { pythonTest } = pythonReference('png-montage.spec', ['numpy', 'nibabel']);
const { dataTest, dataPath } = sharedData('png-montage.spec');

function decode(bytes: Uint8Array): { width: number; height: number; at: (x: number, y: number) => [number, number, number] } {
  const png = pngjs.PNG.sync.read(Buffer.from(bytes));
  return { width: png.width, height: png.height, at: (x, y) => { const i = (y * png.width + x) * 4; return [png.data[i], png.data[i + 1], png.data[i + 2]]; } };
}

/**
 * A test head in RAS voxel order: 10 voxels L->R at 1.5 mm, 14 P->A at 1 mm, 12 I->S at 2 mm; grey 0.2 with a
 * bright marker (1.0) in the anterior-superior-left corner voxel and a 0.6 marker in the posterior-inferior-right one.
 */
const N = [10, 14, 12] as const;
const RAS_AFFINE = [[1.5, 0, 0, -7], [0, 1, 0, -20], [0, 0, 2, 3], [0, 0, 0, 1]];
function rasHead(): Volume<Float32Array> {
  const data = new Float32Array(N[0] * N[1] * N[2]).fill(0.2);
  data[0 + N[0] * ((N[1] - 1) + N[1] * (N[2] - 1))] = 1; // x = L end, y = A end, z = S end
  data[(N[0] - 1) + 0] = 0.6; // x = R end, y = P end, z = I end
  return { data, shape: [...N], affine: RAS_AFFINE.map((r) => r.slice()) };
}
/** Voxel index of the ASL corner in a reoriented grid: where the world point of RAS voxel (0, 13, 11) lands. */
function voxelOf(volume: Volume, world: number[]): [number, number, number] {
  // Solve affine * ijk = world for an axis-permutation affine (exact for these test grids).
  const out: [number, number, number] = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const row = [0, 1, 2].find((r) => volume.affine[r][a] !== 0)!;
    out[a] = Math.round((world[row] - volume.affine[row][3]) / volume.affine[row][a]);
  }
  return out;
}
const ASL_WORLD = [-7 + 0 * 1.5, -20 + 13, 3 + 11 * 2];

test('planes are oriented by the affine: an RAS, LIA and IPL grid of one head give the same picture, the ASL marker where a viewer shows it', (t) => {
  const ras = rasHead();
  const grids = { RAS: ras, LIA: reorient(ras, 'LIA'), IPL: reorient(ras, 'IPL') };
  t.deepEqual(grids.IPL.shape, [12, 14, 10]);
  const pngs = Object.entries(grids).map(([name, v]) => [name, renderMontage(v, null, { centerVoxel: voxelOf(v, ASL_WORLD) })] as const);
  for (const [name, png] of pngs.slice(1)) t.true(Buffer.from(png).equals(Buffer.from(pngs[0][1])), `${name} montage equals the RAS one`);

  const img = decode(pngs[0][1]);
  // Same mm per pixel everywhere (1 mm = the smallest spacing): axial 15 x 14 mm, coronal 15 x 24, sagittal 14 x 24;
  // 2-pixel gaps; panels vertically centred in the 24-pixel height.
  t.is(img.width, 15 + 2 + 15 + 2 + 14);
  t.is(img.height, 24);
  const layout = renderMontageRgb(ras, null, { centerVoxel: [0, 13, 11] });
  t.deepEqual(layout.panels, [
    { plane: 'axial', x: 0, y: 5, width: 15, height: 14 },
    { plane: 'coronal', x: 17, y: 0, width: 15, height: 24 },
    { plane: 'sagittal', x: 34, y: 0, width: 14, height: 24 },
  ]);
  const white: [number, number, number] = [255, 255, 255];
  const bg: [number, number, number] = [51, 51, 51];
  // Radiological: patient's left on the image's right. Axial: anterior up; coronal and sagittal: superior up;
  // sagittal: anterior on the left.
  t.deepEqual(img.at(14, 5), white, 'axial: top-right');
  t.deepEqual(img.at(0, 5), bg, 'axial: top-left is the right side');
  t.deepEqual(img.at(14, 18), bg, 'axial: bottom-right is posterior');
  t.deepEqual(img.at(17 + 14, 0), white, 'coronal: top-right');
  t.deepEqual(img.at(17 + 14, 23), bg, 'coronal: bottom-right is inferior');
  t.deepEqual(img.at(34, 0), white, 'sagittal: top-left');
  t.deepEqual(img.at(34 + 13, 0), bg, 'sagittal: top-right is posterior');
  // The marker voxel is 1.5 mm wide (L-R) and 2 mm high (I-S): the physical aspect shows in its pixel footprint.
  t.deepEqual(img.at(17 + 13, 0), white, 'coronal: 1.5 mm of marker covers a second column');
  t.deepEqual(img.at(17 + 12, 0), bg);
  t.deepEqual(img.at(17 + 14, 1), white, 'coronal: 2 mm of marker covers two rows');
  t.deepEqual(img.at(17 + 14, 2), bg);
  t.deepEqual(img.at(15, 10), [0, 0, 0], 'gap');

  // Through the opposite corner, neurological: patient's left on the image's left.
  const neuro = decode(renderMontage(grids.IPL, null, { centerVoxel: voxelOf(grids.IPL, [-7 + 9 * 1.5, -20, 3]), convention: 'neurological' }));
  const grey06: [number, number, number] = [153, 153, 153];
  t.deepEqual(neuro.at(14, 5 + 13), grey06, 'axial: R is right, P is bottom');
  t.deepEqual(neuro.at(17 + 14, 23), grey06, 'coronal: R is right, I is bottom');
  t.deepEqual(neuro.at(34 + 13, 23), grey06, 'sagittal: P is right, I is bottom');
});

test('labels show in their FreeSurfer colour at the default point, the centre of the ventricles', (t) => {
  const shape: [number, number, number] = [20, 16, 18];
  const affine = [[-1, 0, 0, 10], [0, 0, 1, -8], [0, -1, 0, 9], [0, 0, 0, 1]]; // LIA
  const n = shape[0] * shape[1] * shape[2];
  const image: Volume<Float32Array> = { data: new Float32Array(n).fill(0.5), shape, affine };
  const labels: Volume<Uint8Array> = { data: new Uint8Array(n).fill(2), shape, affine };
  // Left lateral ventricle: a 3 x 3 x 3 block centred on voxel (5, 6, 12); nothing else is a ventricle.
  for (let k = 11; k <= 13; k++) for (let j = 5; j <= 7; j++) for (let i = 4; i <= 6; i++) labels.data[i + shape[0] * (j + shape[1] * k)] = 4;
  const layout = renderMontageRgb(image, labels);
  t.deepEqual(layout.centerVoxel, [5, 6, 12]);
  const img = decode(renderMontage(image, labels));
  const blend = (c: readonly number[]) => c.map((v) => Math.round(0.6 * 128 + 0.4 * v));
  const ventricle = blend(FREESURFER_COLORS[4]);
  const wm = blend(FREESURFER_COLORS[2]);
  t.deepEqual(ventricle, [125, 84, 130]);
  // Where the ventricle's centre (5, 6, 12) is in the world: i runs R->L, j runs S->I, k runs P->A (LIA).
  const xFromL = shape[0] - 1 - 5;
  const yFromP = 12;
  const zFromI = shape[1] - 1 - 6;
  const [axial, coronal, sagittal] = layout.panels;
  // Radiological columns count from the R end; rows from the A/S end.
  t.deepEqual(img.at(axial.x + (shape[0] - 1 - xFromL), axial.y + (shape[2] - 1 - yFromP)), ventricle, 'axial');
  t.deepEqual(img.at(coronal.x + (shape[0] - 1 - xFromL), coronal.y + (shape[1] - 1 - zFromI)), ventricle, 'coronal');
  t.deepEqual(img.at(sagittal.x + (shape[2] - 1 - yFromP), sagittal.y + (shape[1] - 1 - zFromI)), ventricle, 'sagittal');
  t.deepEqual(img.at(axial.x, axial.y), wm, 'white matter elsewhere');
  t.deepEqual(decode(renderMontage(image, labels, { opacity: 0 })).at(axial.x, axial.y), [128, 128, 128], 'opacity 0: image only');
  t.deepEqual(decode(renderMontage(image, null)).width, img.width);
  // Without labels (or ventricles) the planes go through the centre voxel.
  t.deepEqual(renderMontageRgb(image, null).centerVoxel, [10, 8, 9]);
  t.deepEqual(renderMontageRgb(image, { ...labels, data: new Uint8Array(n).fill(3) }).centerVoxel, [10, 8, 9]);
  // Every SynthSeg label has a colour.
  t.deepEqual(SYNTHSEG_LABELS.filter((l) => FREESURFER_COLORS[l] === undefined), []);
});

pythonTest('grey planes match nibabel: as_closest_canonical slices laid out as documented', async (t) => {
  const r = seededRandom(1, 'montage-spec');
  const ras: Volume<Float32Array> = { data: new Float32Array(9 * 11 * 7).map(() => r.next()), shape: [9, 11, 7], affine: [[1.2, 0, 0, -5], [0, 0.8, 0, 4], [0, 0, 1.6, -2], [0, 0, 0, 1]] };
  const ipl = reorient(ras, 'IPL');
  const dir = await mkdtemp(join(tmpdir(), 'brain-ldm-montage-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'ipl.nii');
  await writeNifti(path, { data: ipl.data, shape: ipl.shape, affine: ipl.affine });
  const center: [number, number, number] = [3, 6, 2];
  const scale = 2.5;
  const png = decode(renderMontage(ipl, null, { centerVoxel: center, scale, convention: 'radiological', gap: 3 }));
  const expected = await runPython<{ width: number; height: number; rows: number[][] }>(`
import json, sys
import nibabel as nib, numpy as np
img = nib.load(sys.argv[1]); center = [int(v) for v in sys.argv[2:5]]; scale = float(sys.argv[5]); gap = int(sys.argv[6])
can = nib.as_closest_canonical(img)
data = np.asarray(can.dataobj, dtype=np.float64)
world = img.affine @ np.array(center + [1.0])
c = np.rint(np.linalg.inv(can.affine) @ world)[:3].astype(int)
zooms = np.array(can.header.get_zooms()[:3], dtype=float)
pitch = zooms.min() / scale
def up(plane, sx, sy):
    # plane[a, d]: a = screen column axis, d = screen row axis (already in screen order); nearest-neighbour resize.
    w = max(1, int(round(plane.shape[0] * sx / pitch))); h = max(1, int(round(plane.shape[1] * sy / pitch)))
    ci = np.minimum(plane.shape[0] - 1, np.floor((np.arange(w) + 0.5) * plane.shape[0] / w).astype(int))
    ri = np.minimum(plane.shape[1] - 1, np.floor((np.arange(h) + 0.5) * plane.shape[1] / h).astype(int))
    return plane[np.ix_(ci, ri)].T  # rows x columns
# radiological: columns run R->L; rows run A->P (axial) or S->I.
axial = up(data[::-1, ::-1, c[2]], zooms[0], zooms[1])
coronal = up(data[::-1, c[1], ::-1], zooms[0], zooms[2])
sagittal = up(data[c[0], ::-1, ::-1], zooms[1], zooms[2])
panels = [axial, coronal, sagittal]
H = max(p.shape[0] for p in panels); W = sum(p.shape[1] for p in panels) + 2 * gap
out = np.zeros((H, W)); x = 0
for p in panels:
    y = (H - p.shape[0]) // 2
    out[y:y + p.shape[0], x:x + p.shape[1]] = np.rint(np.clip(p, 0, 1) * 255)
    x += p.shape[1] + gap
print(json.dumps({'width': W, 'height': H, 'rows': out.astype(int).tolist()}))
`, [path, ...center.map(String), String(scale), '3']);
  t.is(png.width, expected.width);
  t.is(png.height, expected.height);
  let mismatches = 0;
  for (let y = 0; y < png.height; y++) for (let x = 0; x < png.width; x++) {
    const [red, g, b] = png.at(x, y);
    if (red !== expected.rows[y][x] || g !== red || b !== red) mismatches++;
  }
  t.is(mismatches, 0, `${mismatches} of ${png.width * png.height} pixels differ from the nibabel reference`);
});

test('scale, determinism and atomic writing', async (t) => {
  const head = rasHead();
  const one = renderMontage(head, null, { centerVoxel: [0, 13, 11] });
  t.true(Buffer.from(one).equals(Buffer.from(renderMontage(head, null, { centerVoxel: [0, 13, 11] }))), 'identical bytes for identical input');
  const two = decode(renderMontage(head, null, { centerVoxel: [0, 13, 11], scale: 2 }));
  t.is(two.width, 30 + 2 + 30 + 2 + 28);
  t.is(two.height, 48);
  const dir = await mkdtemp(join(tmpdir(), 'brain-ldm-montage-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const layout = await writeMontagePng(join(dir, 'm.png'), head, null, { centerVoxel: [0, 13, 11] });
  t.true((await readFile(join(dir, 'm.png'))).equals(Buffer.from(one)));
  t.is(layout.width, 48);
  t.deepEqual(await readdir(dir), ['m.png'], 'no temporary file left');
  await t.throwsAsync(writeMontagePng(join(dir, 'm.jpg'), head, null), { message: /argument 'path' must end in .png, got ".*m.jpg"/ });
});

test('bad input is an error naming the argument and the expected value', (t) => {
  const head = rasHead();
  const labels: Volume<Uint8Array> = { data: new Uint8Array(head.data.length), shape: head.shape, affine: head.affine };
  const cases: Array<[() => unknown, RegExp]> = [
    [() => renderMontage(head, null, { scale: 0 }), /option 'scale' must be a number in \(0, 64\], got 0/],
    [() => renderMontage(head, null, { opacity: 1.5 }), /option 'opacity' must be in \[0, 1\], got 1.5/],
    [() => renderMontage(head, null, { window: [1, 0] }), /option 'window' must be \[low, high\] with low < high, got \[1,0\]/],
    [() => renderMontage(head, null, { convention: 'sideways' as never }), /option 'convention' must be 'radiological' or 'neurological', got "sideways"/],
    [() => renderMontage(head, null, { gap: -1 }), /option 'gap' must be an integer/],
    [() => renderMontage(head, null, { centerVoxel: [0, 14, 0] }), /option 'centerVoxel' \[0, 14, 0\] is outside the volume \[10, 14, 12\]/],
    [() => renderMontage(head, null, { centerVoxel: [0, 1.5, 0] }), /option 'centerVoxel' must be 3 integers/],
    [() => renderMontage(head, null, { centerMm: [500, 0, 0] }), /option 'centerMm' \[500, 0, 0\] is voxel \[338, 20, -1\], outside the volume/],
    [() => renderMontage(head, null, { centerMm: [0, 0, 0], centerVoxel: [0, 0, 0] }), /give option 'centerMm' or 'centerVoxel', not both/],
    [() => renderMontage(head, { ...labels, shape: [14, 10, 12] }), /labels shape \[14, 10, 12\] differs from image shape \[10, 14, 12\]/],
    [() => renderMontage(head, { ...labels, affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] }), /labels affine differs from the image affine at \[0\]\[0\]/],
    [() => renderMontage(head, { ...labels, data: Uint8Array.from(labels.data, (_, i) => (i === 7 ? 31 : 0)) }), /labels voxel 7 has value 31, which is not one of the 33 SynthSeg labels/],
    [() => renderMontage({ ...head, data: new Float32Array(3) }, null), /field 'volume.shape' \[10, 14, 12\] has 1680 voxels but 'volume.data' has 3/],
  ];
  for (const [f, message] of cases) t.throws(f, { message }, String(message));
  // centerMm picks the voxel through the affine.
  t.deepEqual(renderMontageRgb(head, null, { centerMm: ASL_WORLD }).centerVoxel, [0, 13, 11]);
});

dataTest('training_seg_01: the LIA file and its IPL (thesis) reorientation give the same 256 mm montage, ventricles in view', async (t) => {
  const lia = await readLabelVolume(dataPath('synthseg-label-maps/training_seg_01.nii.gz'));
  const labels: Volume<Uint8Array> = { ...lia, data: mapToSynthSeg(lia.data).labels };
  // A stand-in image: each label's channel index as grey, so structures differ.
  const image: Volume<Float32Array> = { ...labels, data: Float32Array.from(labels.data, (l) => synthSegIndex(l) / 32) };
  const started = performance.now();
  const png = renderMontage(image, labels);
  const ms = performance.now() - started;
  t.log(`256^3 montage with overlay: ${ms.toFixed(0)} ms, ${png.length} bytes`);
  const ipl = renderMontage(reorient(image, 'IPL'), reorient(labels, 'IPL'));
  t.true(Buffer.from(png).equals(Buffer.from(ipl)), 'IPL grid gives the same picture');
  const img = decode(png);
  t.is(img.width, 256 * 3 + 2 * 2);
  t.is(img.height, 256);
  const ventricle = FREESURFER_COLORS[4]; // 43 has the same colour; blended with each label's own grey below
  const layout = renderMontageRgb(image, labels);
  // The planes go through the ventricles' centroid: each panel shows lateral-ventricle voxels (4 or 43).
  const grey4 = Math.round((synthSegIndex(4) / 32) * 255);
  const grey43 = Math.round((synthSegIndex(43) / 32) * 255);
  const blend = (g: number) => ventricle.map((c) => Math.round(0.6 * g + 0.4 * c)).join(',');
  const wanted = new Set([blend(grey4), blend(grey43)]);
  for (const p of layout.panels) {
    let hits = 0;
    for (let y = p.y; y < p.y + p.height; y++) for (let x = p.x; x < p.x + p.width; x++) if (wanted.has(img.at(x, y).join(','))) hits++;
    t.true(hits > 50, `${p.plane}: ${hits} lateral-ventricle pixels`);
  }
});
