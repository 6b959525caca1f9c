/**
 * NIfTI reading: the real SynthSeg label maps and the MNI T1 against nibabel's numbers
 * (test/fixtures/nifti/reference.json, made by train/make_nifti_reference.py), big-endian files, header/image pairs,
 * nibabel's affine rules and header fixes, and validation errors that name the file and the field.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  parseNifti, parseNiftiHeader, qformAffine, readNifti, serializeNifti, scaledData, affineAxcodes, type Affine,
  type NiftiData, type NiftiHeader,
} from '../../ts/io/nifti.js';
import { sharedData } from '../helpers/shared-data.js';

// ---- shared data (../shared/data next to the repository) -------------------------------------------------------
const { dataTest, dataPath } = sharedData('nifti-read.spec');

interface RefFile {
  path: string; shape: number[]; dtype: string; axcodes: string; zooms: number[];
  header: Record<string, unknown>; affine: number[][]; qform: number[][]; sform: number[][];
  voxels: Array<{ index: number[]; value: number }>;
  label_counts?: Record<string, number>;
  stats?: { sum: number; min: number; max: number; nonzero: number };
}
const ref = JSON.parse(readFileSync(new URL('../fixtures/nifti/reference.json', import.meta.url), 'utf8')) as { files: RefFile[] };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'brain-ldm-nifti-'));
}

function closeMatrix(t: { true: (v: boolean, m?: string) => void }, got: number[][], want: number[][], tol: number, what: string): void {
  for (let r = 0; r < want.length; r++) for (let c = 0; c < want[r].length; c++) {
    const ok = Math.abs(got[r][c] - want[r][c]) <= tol;
    t.true(ok, `${what}[${r}][${c}]: got ${got[r][c]}, want ${want[r][c]}`);
    if (!ok) return;
  }
}

function at(data: NiftiData, shape: number[], idx: number[]): number {
  return data[idx[0] + shape[0] * (idx[1] + shape[1] * idx[2])];
}

/** reference.json header key (nibabel name) -> our field. */
const FIELD: Record<string, keyof NiftiHeader> = {
  sizeof_hdr: 'sizeofHdr', dim_info: 'dimInfo', dim: 'dim', intent_p1: 'intentP1', intent_p2: 'intentP2',
  intent_p3: 'intentP3', intent_code: 'intentCode', datatype: 'datatype', bitpix: 'bitpix', slice_start: 'sliceStart',
  pixdim: 'pixdim', vox_offset: 'voxOffset', scl_slope: 'sclSlope', scl_inter: 'sclInter', slice_end: 'sliceEnd',
  slice_code: 'sliceCode', xyzt_units: 'xyztUnits', cal_max: 'calMax', cal_min: 'calMin',
  slice_duration: 'sliceDuration', toffset: 'toffset', glmax: 'glmax', glmin: 'glmin', descrip: 'descrip',
  aux_file: 'auxFile', qform_code: 'qformCode', sform_code: 'sformCode', quatern_b: 'quaternB',
  quatern_c: 'quaternC', quatern_d: 'quaternD', qoffset_x: 'qoffsetX', qoffset_y: 'qoffsetY', qoffset_z: 'qoffsetZ',
  srow_x: 'srowX', srow_y: 'srowY', srow_z: 'srowZ', intent_name: 'intentName', magic: 'magic',
};

/** JSON null stands for NaN in the reference (JSON has no NaN). */
function sameValue(got: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(got) && got.length === want.length && want.every((w, k) => sameValue(got[k], w));
  if (want === null) return typeof got === 'number' && Number.isNaN(got);
  if (typeof want === 'number') return got === want || (got === 0 && want === 0);
  return got === want;
}

for (const f of ref.files) {
  dataTest(`${f.path}: header fields, affine, shape, dtype and voxels equal nibabel's`, async (t) => {
    const img = await readNifti(dataPath(f.path));
    t.deepEqual(img.shape, f.shape);
    t.is(img.datatypeName as string, f.dtype);
    t.is(img.littleEndian, f.header.endianness === 'little');
    for (const [key, field] of Object.entries(FIELD)) t.true(sameValue(img.header[field], f.header[key]), `${key}: got ${JSON.stringify(img.header[field])}, nibabel ${JSON.stringify(f.header[key])}`);
    t.is(img.affineSource, 'sform');
    closeMatrix(t, img.affine, f.affine, 0, 'affine');
    // nibabel computes the qform in long double; float64 agrees to rounding.
    closeMatrix(t, qformAffine(img.header), f.qform, 1e-12, 'qform');
    t.is(affineAxcodes(img.affine), f.axcodes);
    t.deepEqual(img.warnings, []);
    for (const v of f.voxels) t.is(at(img.data, img.shape, v.index), v.value, `voxel [${v.index.join(', ')}]`);
    if (f.label_counts) {
      const counts = new Map<number, number>();
      for (const v of img.data) counts.set(v, (counts.get(v) ?? 0) + 1);
      t.deepEqual(Object.fromEntries([...counts.entries()].sort((a, b) => a[0] - b[0]).map(([k, n]) => [String(k), n])), f.label_counts);
    }
    if (f.stats) {
      const s = scaledData(img);
      let sum = 0, min = Infinity, max = -Infinity, nonzero = 0;
      for (const v of s) { sum += v; if (v < min) min = v; if (v > max) max = v; if (v !== 0) nonzero++; }
      t.deepEqual({ sum, min, max, nonzero }, f.stats);
    }
  });
}

dataTest('the MNI T1 reads the same from .nii.gz and from its uncompressed .nii copy', async (t) => {
  const gz = await readNifti(dataPath('mni-icbm152-2009a/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz'));
  const dir = tmp();
  const plain = join(dir, 't1.nii');
  writeFileSync(plain, serializeNifti({ data: gz.data, shape: gz.shape, affine: gz.affine }));
  const back = await readNifti(plain);
  t.deepEqual(back.shape, gz.shape);
  t.true(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength).equals(Buffer.from(gz.data.buffer, gz.data.byteOffset, gz.data.byteLength)));
  closeMatrix(t, back.affine, gz.affine, 0, 'affine');
});

// ---- synthetic files ----------------------------------------------------------------------------------------

const LIA: Affine = [[-1, 0, 0, 128], [0, 0, 1, -128], [0, -1, 0, 128], [0, 0, 0, 1]];

function sample(): Buffer {
  const data = new Int16Array(4 * 3 * 2).map((_, n) => n * 37 - 300);
  return serializeNifti({ data, shape: [4, 3, 2], affine: LIA, header: { descrip: 'sample', sclSlope: 2, sclInter: -1 } });
}

/** Byte-swaps a little-endian single-file NIfTI (header fields and int16 data) into a big-endian one. */
function toBigEndian(le: Buffer): Buffer {
  const be = Buffer.from(le);
  const swap = (o: number, n: number) => { be.set(Buffer.from(le.subarray(o, o + n)).reverse(), o); };
  const i16 = [36, 40, 42, 44, 46, 48, 50, 52, 54, 68, 70, 72, 74, 120, 252, 254];
  const i32 = [0, 32, 140, 144];
  const f32: number[] = [56, 60, 64, 108, 112, 116, 124, 128, 132, 136];
  for (let k = 0; k < 8; k++) f32.push(76 + 4 * k);
  for (let k = 0; k < 6; k++) f32.push(256 + 4 * k);
  for (let k = 0; k < 12; k++) f32.push(280 + 4 * k);
  for (const o of i16) swap(o, 2);
  for (const o of [...i32, ...f32]) swap(o, 4);
  for (let o = 352; o < be.length; o += 2) swap(o, 2);
  return be;
}

test('big-endian files read the same as little-endian ones', (t) => {
  const le = sample();
  const a = parseNifti(le, 'le.nii');
  const b = parseNifti(toBigEndian(le), 'be.nii');
  t.true(a.littleEndian);
  t.false(b.littleEndian);
  t.deepEqual(Array.from(b.data), Array.from(a.data));
  t.deepEqual(b.header, a.header);
  t.deepEqual(b.affine, a.affine);
  t.deepEqual(Array.from(scaledData(b)), Array.from(a.data, (v) => v * 2 - 1));
});

test('gzip is recognised from the bytes, and a .hdr/.img pair reads like the single file', async (t) => {
  const dir = tmp();
  const bytes = sample();
  writeFileSync(join(dir, 'a.nii.gz'), gzipSync(bytes));
  writeFileSync(join(dir, 'b.nii'), gzipSync(bytes)); // gzipped despite the name
  const single = await readNifti(join(dir, 'a.nii.gz'));
  t.deepEqual(Array.from((await readNifti(join(dir, 'b.nii'))).data), Array.from(single.data));
  const hdr = Buffer.from(bytes.subarray(0, 348));
  hdr.write('ni1\0', 344, 'latin1');
  hdr.writeFloatLE(0, 108);
  writeFileSync(join(dir, 'p.hdr'), hdr);
  writeFileSync(join(dir, 'p.img.gz'), gzipSync(bytes.subarray(352)));
  const pair = await readNifti(join(dir, 'p.hdr'));
  t.is(pair.header.magic, 'ni1');
  t.deepEqual(Array.from(pair.data), Array.from(single.data));
  t.deepEqual(pair.affine, single.affine);
  writeFileSync(join(dir, 'q.hdr'), hdr);
  await t.throwsAsync(readNifti(join(dir, 'q.hdr')), { message: /q\.hdr: header\/image pair without image/ });
  writeFileSync(join(dir, 'pair-as-single.nii'), Buffer.concat([hdr, Buffer.alloc(4), bytes.subarray(352)]));
  await t.throwsAsync(readNifti(join(dir, 'pair-as-single.nii')), { message: /pair-as-single\.nii: magic "ni1" means the data are in a separate \.img file/ });
});

function withHeader(edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(sample());
  edit(b);
  return b;
}

function quatHeader(b: number, c: number, d: number, pixdim: number[], codes: [number, number], offsets = [10, -20, 30]): Buffer {
  return withHeader((buf) => {
    buf.writeInt16LE(codes[0], 252);
    buf.writeInt16LE(codes[1], 254);
    buf.writeFloatLE(b, 256); buf.writeFloatLE(c, 260); buf.writeFloatLE(d, 264);
    offsets.forEach((o, k) => buf.writeFloatLE(o, 268 + 4 * k));
    pixdim.forEach((p, k) => buf.writeFloatLE(p, 76 + 4 * k));
  });
}

test('affine rules: sform when sform_code != 0, else qform, else the pixdim affine (nibabel get_best_affine)', (t) => {
  // qform only: 90 degrees about z (w = c = sqrt(1/2)... here b = 0, c = 0, d = sin 45), qfac -1, zooms 2, 3, 4.
  const s = Math.SQRT1_2;
  const q = parseNifti(quatHeader(0, 0, s, [-1, 2, 3, 4], [1, 0]), 'q.nii');
  t.is(q.affineSource, 'qform');
  // R = [[0, -1, 0], [1, 0, 0], [0, 0, 1]] (from float32 sin 45), times diag(2, 3, -4).
  closeMatrix(t, q.affine, [[0, -3, 0, 10], [2, 0, 0, -20], [0, 0, -4, 30], [0, 0, 0, 1]], 1e-6, 'qform affine');
  // Neither code: x flipped, origin at the centre (shape 4, 3, 2; zooms 2, 3, 4).
  const p = parseNifti(quatHeader(0, 0, 0, [1, 2, 3, 4], [0, 0]), 'p.nii');
  t.is(p.affineSource, 'pixdim');
  t.deepEqual(p.affine, [[-2, 0, 0, 3], [0, 3, 0, -3], [0, 0, 4, -2], [0, 0, 0, 1]]);
  // b^2 + c^2 + d^2 just below 1 within float32 precision: w = 0 (a 180 degree rotation), as nibabel fills it.
  const r = parseNifti(quatHeader(0, s, -s, [-1, 1, 1, 1], [1, 0]), 'r.nii');
  closeMatrix(t, r.affine, [[-1, 0, 0, 10], [0, 0, 1, -20], [0, -1, 0, 30], [0, 0, 0, 1]], 1e-6, 'LIA from quaternion');
});

test('header problems nibabel fixes on load are fixed the same way and reported', (t) => {
  const img = parseNifti(quatHeader(0, 0, 0, [0, -2, 0, 4], [1, 7]), 'fix.nii');
  t.is(img.affineSource, 'qform', 'sform_code 7 is invalid and counts as 0');
  t.deepEqual(img.affine, [[2, 0, 0, 10], [0, 1, 0, -20], [0, 0, 4, 30], [0, 0, 0, 1]]);
  t.is(img.warnings.length, 4);
  t.regex(img.warnings.join('\n'), /pixdim\[1\] is -2; using its absolute value/);
  t.regex(img.warnings.join('\n'), /pixdim\[2\] is 0; using 1/);
  t.regex(img.warnings.join('\n'), /qfac\) is 0, expected 1 or -1; using 1/);
  t.regex(img.warnings.join('\n'), /sform_code 7 is not a valid xform code/);
  t.is(img.header.pixdim[1], -2, 'the header keeps the stored values');
});

test('validation errors name the file and the field', (t) => {
  const errs: Array<[Buffer, RegExp]> = [
    [withHeader((b) => b.writeInt32LE(540, 0)), /bad\.nii: field sizeof_hdr is 540 .*expected 348 \(540 is NIfTI-2/],
    [withHeader((b) => b.writeInt32LE(123, 0)), /bad\.nii: field sizeof_hdr is 123 .*expected 348/],
    [withHeader((b) => b.write('n+2\0', 344, 'latin1')), /bad\.nii: field magic is "n\+2\\u0000", expected "n\+1"/],
    [withHeader((b) => b.writeInt16LE(9, 40)), /bad\.nii: field dim\[0\] is 9, expected 1\.\.7/],
    [withHeader((b) => b.writeInt16LE(0, 44)), /bad\.nii: field dim\[2\] is 0, expected >= 1/],
    [withHeader((b) => b.writeInt16LE(32, 70)), /bad\.nii: field datatype is 32 \(complex64\), expected one of 2 \(uint8\)/],
    [withHeader((b) => b.writeInt16LE(1024, 70)), /bad\.nii: field datatype is 1024 \(int64\)/],
    [withHeader((b) => b.writeFloatLE(100, 108)), /bad\.nii: field vox_offset is 100, a single-file NIfTI needs at least 352/],
    [withHeader((b) => b.writeInt16LE(5, 46)), /bad\.nii: dim \[4, 3, 5\] of int16 needs 120 bytes from vox_offset 352, but only 48 follow/],
    [sample().subarray(0, 300), /bad\.nii: truncated NIfTI file: 300 bytes, the header alone needs 348/],
    [sample().subarray(0, 390), /bad\.nii: dim \[4, 3, 2\] of int16 needs 48 bytes from vox_offset 352, but only 38 follow: the file is truncated or field dim is wrong/],
    [quatHeader(0.9, 0.9, 0, [1, 1, 1, 1], [1, 0]), /bad\.nii: fields quatern_b\/c\/d \(0\.89\d*, 0\.89\d*, 0\) have b\^2 \+ c\^2 \+ d\^2 = 1\.6\d* > 1/],
    [withHeader((b) => { b.writeFloatLE(2, 112); b.writeFloatLE(Infinity, 116); }), /bad\.nii: field scl_inter is Infinity while scl_slope is 2/],
  ];
  for (const [bytes, message] of errs) {
    const e = t.throws(() => {
      const img = parseNifti(bytes, 'bad.nii');
      scaledData(img);
    }, undefined, String(message));
    t.regex(e?.message ?? '', message);
  }
  t.throws(() => parseNiftiHeader(Buffer.alloc(10), 'x.nii'), { instanceOf: RangeError, message: /x\.nii: truncated/ });
});

test('file-level errors: missing file, corrupt gzip', async (t) => {
  const dir = tmp();
  await t.throwsAsync(readNifti(join(dir, 'none.nii.gz')), { message: /none\.nii\.gz: no such file/ });
  const gz = gzipSync(sample());
  writeFileSync(join(dir, 'cut.nii.gz'), gz.subarray(0, gz.length - 20));
  await t.throwsAsync(readNifti(join(dir, 'cut.nii.gz')), { message: /cut\.nii\.gz: gzip stream is corrupt or truncated/ });
});
