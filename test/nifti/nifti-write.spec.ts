/**
 * NIfTI writing: write -> read round trips for every datatype (.nii and .nii.gz), byte-exact rewrites, the qform
 * computed from the affine as nibabel's set_qform does (qfac, quaternion, shears stripped), header fields carried
 * over, extensions, atomic writes, and argument errors.
 *
 * With BRAIN_LDM_NIFTI_CHECK_DIR=DIR the suite also leaves a set of files plus DIR/expected.json there, for
 * `.venv/bin/python train/make_nifti_reference.py --check DIR` to confirm that nibabel reads them identically.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  headerForWrite, headerOverridesFrom, parseNifti, qformAffine, qformFromAffine, readNifti, serializeNifti, writeNifti,
  type Affine, type NiftiData, type NiftiWriteInput,
} from '../../ts/io/nifti.js';
import { sharedData } from '../helpers/shared-data.js';

const { dataTest, dataPath, haveData } = sharedData('nifti-write.spec', 'synthseg-label-maps/training_seg_02.nii.gz');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'brain-ldm-niftiw-'));
}

function bytesOf(d: NiftiData): Buffer {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function closeMatrix(t: { true: (v: boolean, m?: string) => void }, got: number[][], want: number[][], tol: number, what: string): void {
  for (let r = 0; r < want.length; r++) for (let c = 0; c < want[r].length; c++) {
    const ok = Math.abs(got[r][c] - want[r][c]) <= tol;
    t.true(ok, `${what}[${r}][${c}]: got ${got[r][c]}, want ${want[r][c]}`);
    if (!ok) return;
  }
}

/** Rotation about a unit axis by `deg` degrees (Rodrigues). */
function rotation(axis: number[], deg: number): number[][] {
  const n = Math.hypot(...axis);
  const [x, y, z] = axis.map((v) => v / n);
  const a = (deg * Math.PI) / 180, c = Math.cos(a), s = Math.sin(a), C = 1 - c;
  return [
    [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
    [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
    [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
  ];
}

function affineFrom(R: number[][], zooms: number[], t: number[]): Affine {
  return [0, 1, 2].map((r) => [R[r][0] * zooms[0], R[r][1] * zooms[1], R[r][2] * zooms[2], t[r]]).concat([[0, 0, 0, 1]]);
}

/** Rounds every entry to float32, as the header stores it. */
function f32(a: Affine): Affine {
  return a.map((r) => r.map((v) => Math.fround(v)));
}

const AFFINES: Record<string, Affine> = {
  RAS: [[1, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]],
  LIA: [[-1, 0, 0, 128], [0, 0, 1, -128], [0, -1, 0, 128], [0, 0, 0, 1]],
  IPL: [[0, 0, -1.667, 128], [0, -1.75, 0, 127], [-1.667, 0, 0, 128], [0, 0, 0, 1]],
  LPS: [[-0.9, 0, 0, 10], [0, -1.1, 0, 20], [0, 0, 3, -5.5], [0, 0, 0, 1]],
  oblique: affineFrom(rotation([1, 2, 3], 37), [1.2, 0.8, 2.5], [-11.5, 3.25, 40]),
  obliqueFlipped: affineFrom(rotation([-2, 0.5, 1], 170).map((r) => [r[0], r[1], -r[2]]), [1, 1, 1.5], [0, 0, 0]),
  halfTurn: affineFrom(rotation([0, 1, 1], 180), [2, 2, 2], [1, 2, 3]),
};

function ramp(Ctor: new (n: number) => NiftiData, n: number, f: (k: number) => number): NiftiData {
  const d = new Ctor(n);
  for (let k = 0; k < n; k++) d[k] = f(k);
  return d;
}

const SHAPE = [5, 4, 3];
const N = 60;
const DATASETS: Record<string, NiftiData> = {
  uint8: ramp(Uint8Array, N, (k) => (k * 7) % 256),
  int8: ramp(Int8Array, N, (k) => ((k * 7) % 256) - 128),
  int16: ramp(Int16Array, N, (k) => k * 1013 - 30000),
  uint16: ramp(Uint16Array, N, (k) => k * 1091),
  int32: ramp(Int32Array, N, (k) => k * 70001 - 2_000_000),
  uint32: ramp(Uint32Array, N, (k) => k * 71_000_001),
  float32: ramp(Float32Array, N, (k) => Math.sin(k) * 1e3),
  float64: ramp(Float64Array, N, (k) => Math.cos(k) / 7),
};

for (const [dtype, data] of Object.entries(DATASETS)) {
  for (const ext of ['.nii', '.nii.gz']) {
    test(`${dtype}${ext}: write -> read gives the header fields, affine and data back exactly`, async (t) => {
      const dir = tmp();
      const path = join(dir, `v${ext}`);
      const affine = f32(AFFINES.oblique);
      const input: NiftiWriteInput = { data, shape: SHAPE, affine, header: { descrip: `brain-ldm ${dtype}`, intentName: 'labels', calMax: 255 } };
      await writeNifti(path, input);
      const img = await readNifti(path);
      t.is(img.datatypeName as string, dtype);
      t.deepEqual(img.shape, SHAPE);
      t.true(bytesOf(img.data).equals(bytesOf(data)));
      const want = headerForWrite(input);
      // Header fields are stored as float32/int16: compare with the float32 rounding of what we asked for.
      t.deepEqual(img.header, { ...want, pixdim: want.pixdim.map(Math.fround), quaternB: Math.fround(want.quaternB), quaternC: Math.fround(want.quaternC), quaternD: Math.fround(want.quaternD), qoffsetX: Math.fround(want.qoffsetX), qoffsetY: Math.fround(want.qoffsetY), qoffsetZ: Math.fround(want.qoffsetZ) });
      t.is(img.header.magic, 'n+1');
      t.is(img.header.voxOffset, 352);
      t.is(img.header.xyztUnits, 2, 'units mm');
      t.is(img.header.sformCode, 2);
      t.is(img.header.qformCode, 2);
      t.true(img.littleEndian);
      t.deepEqual(img.affine, affine, 'float32-representable affines come back exactly');
      t.deepEqual(img.warnings, []);
      t.deepEqual(readdirSync(dir), [`v${ext}`], 'no temporary file left behind');
    });
  }
}

test('write(read(file)) reproduces the file byte for byte, gzipped or not', async (t) => {
  const dir = tmp();
  const first = join(dir, 'a.nii.gz');
  await writeNifti(first, { data: DATASETS.int16, shape: SHAPE, affine: AFFINES.LPS, header: { descrip: 'x', sclSlope: 0.5, sclInter: 3, qformCode: 1, sformCode: 4, timeUnits: 8, pixdimExtra: [2.5] } });
  const original = gunzipSync(readFileSync(first));
  const img = await readNifti(first);
  const again = serializeNifti({ data: img.data, shape: img.shape, affine: img.affine, header: headerOverridesFrom(img.header), extensions: img.extensions });
  t.true(again.equals(original));
  const second = join(dir, 'b.nii');
  await writeNifti(second, { data: img.data, shape: img.shape, affine: img.affine, header: headerOverridesFrom(img.header) });
  t.true(readFileSync(second).equals(original));
  t.is(img.header.xyztUnits, 2 | 8, 'mm and seconds');
  t.is(img.header.pixdim[4], 2.5);
  t.is(img.header.sclSlope, 0.5);
});

test('qform from the affine: reading with sform_code 0 gives the affine back (qfac, rotations, half turns)', (t) => {
  for (const [name, affine] of Object.entries(AFFINES)) {
    const bytes = serializeNifti({ data: DATASETS.uint8, shape: SHAPE, affine });
    bytes.writeInt16LE(0, 254); // sform_code 0: the reader must use the quaternion
    const img = parseNifti(bytes, `${name}.nii`);
    t.is(img.affineSource, 'qform', name);
    closeMatrix(t, img.affine, affine, 2e-5 * 128, `${name} qform`);
    const { qfac } = qformFromAffine(affine);
    t.is(img.header.pixdim[0], qfac, `${name} qfac`);
  }
  // nibabel's set_qform for the FreeSurfer LIA affine: qfac -1, quaternion (b, c, d) = (0, -sqrt 1/2, sqrt 1/2).
  const q = qformFromAffine(AFFINES.LIA);
  t.is(q.qfac, -1);
  t.deepEqual(q.zooms, [1, 1, 1]);
  closeMatrix(t, [q.quatern], [[0, -Math.SQRT1_2, Math.SQRT1_2]], 1e-15, 'LIA quaternion');
  t.deepEqual(q.offset, [128, -128, 128]);
});

test('sheared affines: the sform keeps the shear, the qform gets the closest rotation (as nibabel strips shears)', (t) => {
  const sheared: Affine = [[1, 0.2, 0, 5], [0, 1, 0, 6], [0, 0, 2, 7], [0, 0, 0, 1]];
  const bytes = serializeNifti({ data: DATASETS.uint8, shape: SHAPE, affine: sheared });
  const img = parseNifti(bytes, 'shear.nii');
  t.deepEqual(img.affine, f32(sheared));
  const q = qformFromAffine(sheared);
  t.deepEqual(q.zooms.map((z) => Math.fround(z)), [1, Math.fround(Math.hypot(0.2, 1)), 2]);
  bytes.writeInt16LE(0, 254);
  const viaQ = parseNifti(bytes, 'shear.nii').affine;
  // Columns of the qform rotation are orthonormal.
  const cols = [0, 1, 2].map((c) => [0, 1, 2].map((r) => viaQ[r][c] / q.zooms[c]));
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) {
    const dot = cols[a][0] * cols[b][0] + cols[a][1] * cols[b][1] + cols[a][2] * cols[b][2];
    t.true(Math.abs(dot - (a === b ? 1 : 0)) < 1e-6, `column ${a} . column ${b} = ${dot}`);
  }
});

test('header extensions survive a round trip; vox_offset follows them', async (t) => {
  const dir = tmp();
  const path = join(dir, 'ext.nii');
  const payload = new Uint8Array(24).map((_, k) => k + 1);
  await writeNifti(path, { data: DATASETS.float32, shape: SHAPE, affine: AFFINES.RAS, extensions: [{ code: 6, data: payload }] });
  const img = await readNifti(path);
  t.is(img.header.voxOffset, 352 + 32);
  t.is(img.extensions.length, 1);
  t.is(img.extensions[0].code, 6);
  t.deepEqual(Array.from(img.extensions[0].data.subarray(0, 24)), Array.from(payload));
  t.is(img.extensions[0].data.byteLength, 24, 'esize 32 = 8 + 24');
  t.true(bytesOf(img.data).equals(bytesOf(DATASETS.float32)));
});

test('argument errors name the argument and the expected value', async (t) => {
  const ok: NiftiWriteInput = { data: DATASETS.uint8, shape: SHAPE, affine: AFFINES.RAS };
  await t.throwsAsync(writeNifti('/tmp/x.mgz', ok), { instanceOf: TypeError, message: /writeNifti: argument 'path' must end in \.nii or \.nii\.gz, got "\/tmp\/x\.mgz"/ });
  t.throws(() => serializeNifti({ ...ok, shape: [5, 4, 4] }), { instanceOf: RangeError, message: /field 'shape' \[5, 4, 4\] has 80 voxels but 'data' has 60 elements/ });
  t.throws(() => serializeNifti({ ...ok, shape: [] }), { instanceOf: RangeError, message: /field 'shape' must be 1 to 7 integer sizes/ });
  t.throws(() => serializeNifti({ ...ok, data: new BigInt64Array(60) as unknown as NiftiData }), { instanceOf: TypeError, message: /field 'data' must be one of Uint8Array, Int16Array.*got BigInt64Array/ });
  t.throws(() => serializeNifti({ ...ok, affine: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] }), { instanceOf: TypeError, message: /field 'affine': affine must be a 4x4 array/ });
  t.throws(() => serializeNifti({ ...ok, affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]] }), { instanceOf: RangeError, message: /singular/ });
  t.throws(() => serializeNifti({ ...ok, affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]] }), { instanceOf: RangeError, message: /last row must be \[0, 0, 0, 1\]/ });
  t.throws(() => serializeNifti({ ...ok, header: { sformCode: 0 } }), { instanceOf: RangeError, message: /field 'header\.sformCode' must be 1\.\.4 \(both sform and qform are always written\), got 0/ });
  t.throws(() => serializeNifti({ ...ok, header: { descrip: 'x'.repeat(81) } }), { instanceOf: RangeError, message: /field 'header\.descrip' must be a latin-1 string of at most 80 characters/ });
  await t.throwsAsync(writeNifti(join(tmp(), 'missing-dir', 'x.nii'), ok), { code: 'ENOENT' });
});

dataTest('a real label map (int32, fractional translation) rewritten by us reads back identically', async (t) => {
  const src = await readNifti(dataPath('synthseg-label-maps/training_seg_02.nii.gz'));
  const dir = tmp();
  const path = join(dir, 'seg02.nii.gz');
  await writeNifti(path, { data: src.data, shape: src.shape, affine: src.affine, header: headerOverridesFrom(src.header) }, { gzipLevel: 1 });
  const back = await readNifti(path);
  t.is(back.datatypeName, 'int32');
  t.deepEqual(back.affine, src.affine);
  t.is(back.header.descrip, 'FreeSurfer May 11 2020');
  t.is(back.header.sformCode, 1);
  t.is(back.header.qformCode, 1);
  t.true(bytesOf(back.data).equals(bytesOf(src.data)));
  // Our qform gives FreeSurfer's qform affine. The quaternion itself is the negated one: with w = 0 (a half turn)
  // q and -q are the same rotation; FreeSurfer stored (-0, 0.7071, -0.7071), nibabel's set_qform and we (0, -0.7071, 0.7071).
  closeMatrix(t, qformAffine(back.header), qformAffine(src.header), 0, 'qform');
  t.deepEqual([back.header.quaternB, back.header.quaternC, back.header.quaternD].map((v) => v + 0), [src.header.quaternB, src.header.quaternC, src.header.quaternD].map((v) => -v + 0));
  t.deepEqual(back.header.pixdim.slice(0, 4), src.header.pixdim.slice(0, 4));
});

// Files for the nibabel cross-check (train/make_nifti_reference.py --check DIR), written only when asked for.
const CHECK_DIR = process.env.BRAIN_LDM_NIFTI_CHECK_DIR;
if (CHECK_DIR) {
  test('writes files for the nibabel cross-check', async (t) => {
    mkdirSync(CHECK_DIR, { recursive: true });
    const files: unknown[] = [];
    let n = 0;
    for (const [dtype, data] of Object.entries(DATASETS)) {
      for (const [name, affine] of Object.entries(AFFINES)) {
        if (name === 'oblique' || name === 'halfTurn' || n % 2 === 0) {
          const file = `${dtype}-${name}${n % 3 === 0 ? '.nii' : '.nii.gz'}`;
          await writeNifti(join(CHECK_DIR, file), { data, shape: SHAPE, affine, header: { descrip: `check ${file}`, qformCode: 1, sformCode: 2 } });
          files.push({
            file, shape: SHAPE, dtype, affine: f32(affine),
            header: { descrip: `check ${file}`, qform_code: 1, sform_code: 2, xyzt_units: 2, vox_offset: 352, magic: 'n+1' },
            sha256: createHash('sha256').update(bytesOf(data)).digest('hex'),
          });
        }
        n++;
      }
    }
    if (haveData) {
      const src = await readNifti(dataPath('synthseg-label-maps/training_seg_01.nii.gz'));
      const file = 'training_seg_01-rewritten.nii.gz';
      await writeNifti(join(CHECK_DIR, file), { data: src.data, shape: src.shape, affine: src.affine, header: headerOverridesFrom(src.header) }, { gzipLevel: 1 });
      files.push({ file, shape: src.shape, dtype: 'float32', affine: src.affine, header: { qform_code: 1, sform_code: 1, descrip: src.header.descrip }, sha256: createHash('sha256').update(bytesOf(src.data)).digest('hex') });
    }
    writeFileSync(join(CHECK_DIR, 'expected.json'), JSON.stringify({ files }, null, 1));
    t.log(`wrote ${files.length} files to ${CHECK_DIR}; check with .venv/bin/python train/make_nifti_reference.py --check ${CHECK_DIR}`);
    t.pass();
  });
}
