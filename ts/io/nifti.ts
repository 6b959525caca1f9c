/**
 * NIfTI-1 reader and writer (`.nii`, `.nii.gz`; `.hdr`/`.img` pairs on read).
 *
 * Hand-written on purpose. npm packages checked (`npm view`, and their sources):
 *   - nifti-reader-js 0.8.0 (rii-mango, MIT, depends on fflate): reads NIfTI-1/2 headers and images; it can
 *     serialise a header (`toArrayBuffer`) but has no image writer, no affine -> quaternion conversion (qform from
 *     an affine) and no gzip writing. @bids/nifti-reader-js 0.6.9 is a fork of the same reader.
 *   - nifti-js 1.0.1 (scijs, MIT): reader only, CommonJS, ignores the sform ("sform transformation are currently
 *     ignored"), warns through console instead of failing.
 *   - @niivue/niivue, @cornerstonejs/nifti-volume-loader: WebGL viewers / viewer loaders built on nifti-reader-js.
 * None writes files, and none reproduces nibabel's affine rules (sform, else qform with the quaternion filled the
 * way nibabel fills it, else the pixdim fallback) together with the header fixes nibabel applies on load. The format
 * is one 348-byte struct, so a reader/writer here is smaller than adapting a reader-only package.
 *
 * Reference for the behaviour: nibabel 5.4 (`nibabel/nifti1.py`: get_best_affine, get_qform, set_qform,
 * get_slope_inter, the _chk_* header checks; `nibabel/quaternions.py`: fillpositive, quat2mat, mat2quat;
 * `nibabel/volumeutils.py`: shape_zoom_affine). Layout of the header (byte offsets) is in HEADER_LAYOUT below.
 *
 * Data order: `data` is in file order, i.e. the first index varies fastest (voxel (i, j, k) of a volume of shape
 * [nx, ny, nz] is data[i + nx * (j + ny * k)]), the same as numpy's `order='F'` view nibabel returns.
 * Values are the stored values; `scl_slope`/`scl_inter` are not applied (see `niftiScaling` / `scaledData`).
 */
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { gunzip, gzip, constants as zlibConstants } from 'node:zlib';
import { checkLittleEndianHost, readFileFully } from './safetensors.js';
import { writeFileAtomically } from './atomic-write.js';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** 4x4 affine, row-major: world (mm, RAS+ as NIfTI defines it) = affine x [i, j, k, 1]^T, (i, j, k) voxel indices. */
export type Affine = number[][];

/** Voxel types this module reads and writes, named like numpy dtypes. */
export type NiftiDataTypeName = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

export type NiftiData = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

type NiftiArrayClass = { new (length: number): NiftiData; new (buffer: ArrayBufferLike, byteOffset: number, length: number): NiftiData; readonly BYTES_PER_ELEMENT: number; readonly name: string };

interface DataTypeInfo { code: number; name: NiftiDataTypeName; array: NiftiArrayClass; bitpix: number }

/** NIfTI-1 datatype codes (nifti1.h, NIFTI_TYPE_*) that we support. */
export const NIFTI_DATATYPES: readonly DataTypeInfo[] = [
  { code: 2, name: 'uint8', array: Uint8Array, bitpix: 8 },
  { code: 4, name: 'int16', array: Int16Array, bitpix: 16 },
  { code: 8, name: 'int32', array: Int32Array, bitpix: 32 },
  { code: 16, name: 'float32', array: Float32Array, bitpix: 32 },
  { code: 64, name: 'float64', array: Float64Array, bitpix: 64 },
  { code: 256, name: 'int8', array: Int8Array, bitpix: 8 },
  { code: 512, name: 'uint16', array: Uint16Array, bitpix: 16 },
  { code: 768, name: 'uint32', array: Uint32Array, bitpix: 32 },
];

/** Datatype codes NIfTI-1 defines but we do not read, with their names, for error messages. */
const UNSUPPORTED_DATATYPES: Readonly<Record<number, string>> = {
  0: 'unknown', 1: 'binary (1 bit)', 32: 'complex64', 128: 'rgb24', 1024: 'int64', 1280: 'uint64', 1536: 'float128',
  1792: 'complex128', 2048: 'complex256', 2304: 'rgba32',
};

export function dataTypeByCode(code: number): DataTypeInfo | undefined {
  return NIFTI_DATATYPES.find((d) => d.code === code);
}

export function dataTypeOfArray(data: unknown): DataTypeInfo | undefined {
  return NIFTI_DATATYPES.find((d) => data instanceof d.array);
}

/** xform codes (nifti1.h NIFTI_XFORM_*): 0 unknown, 1 scanner_anat, 2 aligned_anat, 3 talairach, 4 mni_152. */
export const XFORM_CODES: Readonly<Record<string, number>> = { unknown: 0, scanner: 1, aligned: 2, talairach: 3, mni: 4 };

/** xyzt_units: spatial unit in bits 0-2 (1 m, 2 mm, 3 um), temporal unit in bits 3-5. */
export const NIFTI_UNITS_MM = 2;

/** Every field of the 348-byte NIfTI-1 header, as stored (no fixes applied). Strings stop at the first NUL. */
export interface NiftiHeader {
  sizeofHdr: number;
  /** Analyze 7.5 leftovers, unused by NIfTI; kept so a round trip is byte-exact. */
  dataTypeLegacy: string;
  dbName: string;
  extents: number;
  sessionError: number;
  regular: number;
  dimInfo: number;
  /** dim[0] = number of dimensions, dim[1..7] = sizes. */
  dim: number[];
  intentP1: number;
  intentP2: number;
  intentP3: number;
  intentCode: number;
  datatype: number;
  bitpix: number;
  sliceStart: number;
  /** pixdim[0] = qfac (+1/-1), pixdim[1..3] = voxel sizes, pixdim[4] = TR, ... */
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  sliceEnd: number;
  sliceCode: number;
  xyztUnits: number;
  calMax: number;
  calMin: number;
  sliceDuration: number;
  toffset: number;
  glmax: number;
  glmin: number;
  descrip: string;
  auxFile: string;
  qformCode: number;
  sformCode: number;
  quaternB: number;
  quaternC: number;
  quaternD: number;
  qoffsetX: number;
  qoffsetY: number;
  qoffsetZ: number;
  srowX: number[];
  srowY: number[];
  srowZ: number[];
  intentName: string;
  /** 'n+1' (single file) or 'ni1' (header/image pair). */
  magic: string;
}

/** A header extension (NIfTI-1 extension mechanism): `code` (ecode) and its payload (esize - 8 bytes, padded). */
export interface NiftiExtension { code: number; data: Uint8Array }

export interface NiftiImage {
  /** Where it was read from (the path, or the name given to parseNifti); used in later error messages. */
  source: string;
  header: NiftiHeader;
  /** Stored values in file order (first index fastest), in host byte order. */
  data: NiftiData;
  /** dim[1..dim[0]]. */
  shape: number[];
  /** The affine nibabel's `img.affine` gives: sform if sform_code != 0, else qform if qform_code != 0, else pixdim. */
  affine: Affine;
  /** Which rule produced `affine`. */
  affineSource: 'sform' | 'qform' | 'pixdim';
  datatypeName: NiftiDataTypeName;
  littleEndian: boolean;
  extensions: NiftiExtension[];
  /** Header problems fixed in memory the way nibabel fixes them on load (the header fields stay as stored). */
  warnings: string[];
}

/** Byte offsets of the header fields (nifti1.h, struct nifti_1_header). */
const HEADER_LAYOUT = {
  sizeofHdr: 0, dataTypeLegacy: 4, dbName: 14, extents: 32, sessionError: 36, regular: 38, dimInfo: 39, dim: 40,
  intentP1: 56, intentP2: 60, intentP3: 64, intentCode: 68, datatype: 70, bitpix: 72, sliceStart: 74, pixdim: 76,
  voxOffset: 108, sclSlope: 112, sclInter: 116, sliceEnd: 120, sliceCode: 122, xyztUnits: 123, calMax: 124,
  calMin: 128, sliceDuration: 132, toffset: 136, glmax: 140, glmin: 144, descrip: 148, auxFile: 228,
  qformCode: 252, sformCode: 254, quaternB: 256, quaternC: 260, quaternD: 264, qoffsetX: 268, qoffsetY: 272,
  qoffsetZ: 276, srowX: 280, srowY: 296, srowZ: 312, intentName: 328, magic: 344,
} as const;

const STRING_FIELDS = { dataTypeLegacy: 10, dbName: 18, descrip: 80, auxFile: 24, intentName: 16 } as const;

export const NIFTI1_HEADER_SIZE = 348;
/** Single-file data start without extensions: the header plus the 4-byte extension flag. */
export const NIFTI1_SINGLE_VOX_OFFSET = 352;

function readString(bytes: Uint8Array, at: number, len: number): string {
  let end = at;
  while (end < at + len && bytes[end] !== 0) end++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, end - at).toString('latin1');
}

/** Parses the 348 header bytes at the start of `bytes` (either byte order); `source` names the file in errors. */
export function parseNiftiHeader(bytes: Uint8Array, source = '<buffer>'): { header: NiftiHeader; littleEndian: boolean } {
  if (bytes.byteLength < NIFTI1_HEADER_SIZE)
    throw new RangeError(`${source}: truncated NIfTI file: ${bytes.byteLength} bytes, the header alone needs ${NIFTI1_HEADER_SIZE}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, NIFTI1_HEADER_SIZE);
  const le = dv.getInt32(0, true);
  const be = dv.getInt32(0, false);
  let littleEndian: boolean;
  if (le === NIFTI1_HEADER_SIZE) littleEndian = true;
  else if (be === NIFTI1_HEADER_SIZE) littleEndian = false;
  else {
    const hint = le === 540 || be === 540 ? ' (540 is NIfTI-2, which is not supported)' : ' (not a NIfTI-1 file, or corrupt)';
    throw new RangeError(`${source}: field sizeof_hdr is ${le} (little-endian) / ${be} (big-endian), expected 348${hint}`);
  }
  const L = HEADER_LAYOUT;
  const i16 = (o: number) => dv.getInt16(o, littleEndian);
  const i32 = (o: number) => dv.getInt32(o, littleEndian);
  const f32 = (o: number) => dv.getFloat32(o, littleEndian);
  const f32s = (o: number, n: number) => Array.from({ length: n }, (_, k) => f32(o + 4 * k));
  const header: NiftiHeader = {
    sizeofHdr: i32(L.sizeofHdr),
    dataTypeLegacy: readString(bytes, L.dataTypeLegacy, STRING_FIELDS.dataTypeLegacy),
    dbName: readString(bytes, L.dbName, STRING_FIELDS.dbName),
    extents: i32(L.extents),
    sessionError: i16(L.sessionError),
    regular: dv.getUint8(L.regular),
    dimInfo: dv.getUint8(L.dimInfo),
    dim: Array.from({ length: 8 }, (_, k) => i16(L.dim + 2 * k)),
    intentP1: f32(L.intentP1),
    intentP2: f32(L.intentP2),
    intentP3: f32(L.intentP3),
    intentCode: i16(L.intentCode),
    datatype: i16(L.datatype),
    bitpix: i16(L.bitpix),
    sliceStart: i16(L.sliceStart),
    pixdim: f32s(L.pixdim, 8),
    voxOffset: f32(L.voxOffset),
    sclSlope: f32(L.sclSlope),
    sclInter: f32(L.sclInter),
    sliceEnd: i16(L.sliceEnd),
    sliceCode: dv.getUint8(L.sliceCode),
    xyztUnits: dv.getUint8(L.xyztUnits),
    calMax: f32(L.calMax),
    calMin: f32(L.calMin),
    sliceDuration: f32(L.sliceDuration),
    toffset: f32(L.toffset),
    glmax: i32(L.glmax),
    glmin: i32(L.glmin),
    descrip: readString(bytes, L.descrip, STRING_FIELDS.descrip),
    auxFile: readString(bytes, L.auxFile, STRING_FIELDS.auxFile),
    qformCode: i16(L.qformCode),
    sformCode: i16(L.sformCode),
    quaternB: f32(L.quaternB),
    quaternC: f32(L.quaternC),
    quaternD: f32(L.quaternD),
    qoffsetX: f32(L.qoffsetX),
    qoffsetY: f32(L.qoffsetY),
    qoffsetZ: f32(L.qoffsetZ),
    srowX: f32s(L.srowX, 4),
    srowY: f32s(L.srowY, 4),
    srowZ: f32s(L.srowZ, 4),
    intentName: readString(bytes, L.intentName, STRING_FIELDS.intentName),
    magic: readString(bytes, L.magic, 4),
  };
  if (header.magic !== 'n+1' && header.magic !== 'ni1') {
    const shown = JSON.stringify(Buffer.from(bytes.buffer, bytes.byteOffset + L.magic, 4).toString('latin1'));
    throw new RangeError(`${source}: field magic is ${shown}, expected "n+1" (single file) or "ni1" (header/image pair); Analyze 7.5 files are not read`);
  }
  const ndim = header.dim[0];
  if (!(ndim >= 1 && ndim <= 7)) throw new RangeError(`${source}: field dim[0] is ${ndim}, expected 1..7 (the number of dimensions)`);
  for (let k = 1; k <= ndim; k++) {
    if (header.dim[k] < 1) throw new RangeError(`${source}: field dim[${k}] is ${header.dim[k]}, expected >= 1 (dim = [${header.dim.join(', ')}])`);
  }
  return { header, littleEndian };
}

/** Voxel sizes, qfac and xform codes after the fixes nibabel applies on load (Nifti1Header._chk_*), with messages. */
function fixedGeometry(h: NiftiHeader): { pixdim: number[]; qformCode: number; sformCode: number; warnings: string[] } {
  const warnings: string[] = [];
  const pixdim = h.pixdim.slice();
  for (let k = 1; k <= 3; k++) {
    if (pixdim[k] === 0) {
      warnings.push(`pixdim[${k}] is 0; using 1 (as nibabel does)`);
      pixdim[k] = 1;
    } else if (pixdim[k] < 0) {
      warnings.push(`pixdim[${k}] is ${pixdim[k]}; using its absolute value (as nibabel does)`);
      pixdim[k] = -pixdim[k];
    }
  }
  if (pixdim[0] !== 1 && pixdim[0] !== -1) {
    warnings.push(`pixdim[0] (qfac) is ${pixdim[0]}, expected 1 or -1; using 1 (as nibabel does)`);
    pixdim[0] = 1;
  }
  const code = (name: 'qform_code' | 'sform_code', v: number) => {
    if (v >= 0 && v <= 4) return v;
    warnings.push(`${name} ${v} is not a valid xform code (0..4); using 0 (as nibabel does)`);
    return 0;
  };
  return { pixdim, qformCode: code('qform_code', h.qformCode), sformCode: code('sform_code', h.sformCode), warnings };
}

/** Float32 epsilon x 3: nibabel's threshold under which w^2 of a stored quaternion counts as 0. */
const QUATERNION_THRESHOLD = 3 * 2 ** -23;

/** Rotation matrix of the quaternion (w, x, y, z); non-unit quaternions allowed (nibabel quaternions.quat2mat). */
export function quaternionToMatrix(w: number, x: number, y: number, z: number): number[][] {
  const nq = w * w + x * x + y * y + z * z;
  if (nq < Number.EPSILON) return [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const s = 2 / nq;
  const X = x * s, Y = y * s, Z = z * s;
  const wX = w * X, wY = w * Y, wZ = w * Z;
  const xX = x * X, xY = x * Y, xZ = x * Z;
  const yY = y * Y, yZ = y * Z, zZ = z * Z;
  return [
    [1 - (yY + zZ), xY - wZ, xZ + wY],
    [xY + wZ, 1 - (xX + zZ), yZ - wX],
    [xZ - wY, yZ + wX, 1 - (xX + yY)],
  ];
}

/**
 * The qform affine of a header (nibabel Nifti1Header.get_qform): w filled from b, c, d (w = 0 when
 * |1 - b^2 - c^2 - d^2| < 3 float32 eps), R = quat2mat, zooms = pixdim[1..3] with the third times qfac.
 * nibabel fills w in long double; we use float64, so results may differ from nibabel's in the last bit.
 */
export function qformAffine(h: NiftiHeader, source = '<header>'): Affine {
  const { pixdim } = fixedGeometry(h);
  const b = h.quaternB, c = h.quaternC, d = h.quaternD;
  const w2 = 1 - (b * b + c * c + d * d);
  let w: number;
  if (Math.abs(w2) < QUATERNION_THRESHOLD) w = 0;
  else if (w2 < 0) throw new RangeError(`${source}: fields quatern_b/c/d (${b}, ${c}, ${d}) have b^2 + c^2 + d^2 = ${1 - w2} > 1: not a unit quaternion`);
  else w = Math.sqrt(w2);
  const R = quaternionToMatrix(w, b, c, d);
  const zooms = [pixdim[1], pixdim[2], pixdim[3] * pixdim[0]];
  const off = [h.qoffsetX, h.qoffsetY, h.qoffsetZ];
  return [
    [R[0][0] * zooms[0], R[0][1] * zooms[1], R[0][2] * zooms[2], off[0]],
    [R[1][0] * zooms[0], R[1][1] * zooms[1], R[1][2] * zooms[2], off[1]],
    [R[2][0] * zooms[0], R[2][1] * zooms[1], R[2][2] * zooms[2], off[2]],
    [0, 0, 0, 1],
  ];
}

/** The sform affine (srow_x/y/z), whatever sform_code says. */
export function sformAffine(h: NiftiHeader): Affine {
  return [h.srowX.slice(), h.srowY.slice(), h.srowZ.slice(), [0, 0, 0, 1]];
}

/**
 * The affine from dims and voxel sizes alone (nibabel shape_zoom_affine with x_flip): x axis flipped, origin at the
 * centre of the volume. Used when both qform_code and sform_code are 0.
 */
export function pixdimAffine(h: NiftiHeader): Affine {
  const { pixdim } = fixedGeometry(h);
  const ndim = h.dim[0];
  const shape = [1, 1, 1];
  const zooms = [1, 1, 1];
  for (let k = 0; k < Math.min(3, ndim); k++) {
    shape[k] = h.dim[k + 1];
    zooms[k] = pixdim[k + 1];
  }
  zooms[0] = -zooms[0];
  const a: Affine = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  for (let k = 0; k < 3; k++) {
    a[k][k] = zooms[k];
    a[k][3] = -((shape[k] - 1) / 2) * zooms[k];
  }
  return a;
}

/** nibabel's get_best_affine: sform if sform_code != 0, else qform if qform_code != 0, else the pixdim affine. */
export function bestAffine(h: NiftiHeader, source = '<header>'): { affine: Affine; source: 'sform' | 'qform' | 'pixdim' } {
  const { qformCode, sformCode } = fixedGeometry(h);
  if (sformCode !== 0) return { affine: sformAffine(h), source: 'sform' };
  if (qformCode !== 0) return { affine: qformAffine(h, source), source: 'qform' };
  return { affine: pixdimAffine(h), source: 'pixdim' };
}

/**
 * nibabel's get_slope_inter: null when scl_slope is 0 or not finite (no scaling); an error when the slope is valid
 * but scl_inter is not finite.
 */
export function niftiScaling(h: NiftiHeader, source = '<header>'): { slope: number; inter: number } | null {
  if (h.sclSlope === 0 || !Number.isFinite(h.sclSlope)) return null;
  if (!Number.isFinite(h.sclInter)) throw new RangeError(`${source}: field scl_inter is ${h.sclInter} while scl_slope is ${h.sclSlope}: a valid slope needs a finite intercept`);
  return { slope: h.sclSlope, inter: h.sclInter };
}

/** Values with scl_slope/scl_inter applied, as float64 (nibabel get_fdata). */
export function scaledData(image: NiftiImage): Float64Array {
  const s = niftiScaling(image.header, image.source) ?? { slope: 1, inter: 0 };
  const out = new Float64Array(image.data.length);
  for (let n = 0; n < out.length; n++) out[n] = image.data[n] * s.slope + s.inter;
  return out;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

async function maybeGunzip(bytes: Buffer, source: string): Promise<Buffer> {
  if (!isGzip(bytes)) return bytes;
  try {
    return await gunzipAsync(bytes);
  } catch (e) {
    throw new RangeError(`${source}: gzip stream is corrupt or truncated: ${(e as Error).message}`);
  }
}

function parseExtensions(bytes: Uint8Array, header: NiftiHeader, littleEndian: boolean, dataStart: number, source: string): NiftiExtension[] {
  // Bytes 348..351: extension flag; extensions follow from 352 up to vox_offset (single file only).
  if (header.magic !== 'n+1' || bytes.byteLength < NIFTI1_SINGLE_VOX_OFFSET || bytes[348] === 0) return [];
  const exts: NiftiExtension[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = NIFTI1_SINGLE_VOX_OFFSET;
  while (at + 8 <= dataStart) {
    const esize = dv.getInt32(at, littleEndian);
    const code = dv.getInt32(at + 4, littleEndian);
    if (esize < 16 || esize % 16 !== 0 || at + esize > dataStart)
      throw new RangeError(`${source}: header extension at byte ${at} has esize ${esize}, expected a multiple of 16 (>= 16) that ends by vox_offset ${dataStart}`);
    exts.push({ code, data: bytes.slice(at + 8, at + esize) });
    at += esize;
  }
  return exts;
}

function decodeData(bytes: Uint8Array, offset: number, count: number, info: DataTypeInfo, littleEndian: boolean): NiftiData {
  const size = info.array.BYTES_PER_ELEMENT;
  if (littleEndian && (bytes.byteOffset + offset) % size === 0) return new info.array(bytes.buffer, bytes.byteOffset + offset, count);
  const out = new info.array(count);
  if (littleEndian) {
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + count * size));
    return out;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * size);
  switch (info.name) {
    case 'uint8': for (let n = 0; n < count; n++) out[n] = dv.getUint8(n); break;
    case 'int8': for (let n = 0; n < count; n++) out[n] = dv.getInt8(n); break;
    case 'int16': for (let n = 0; n < count; n++) out[n] = dv.getInt16(2 * n, false); break;
    case 'uint16': for (let n = 0; n < count; n++) out[n] = dv.getUint16(2 * n, false); break;
    case 'int32': for (let n = 0; n < count; n++) out[n] = dv.getInt32(4 * n, false); break;
    case 'uint32': for (let n = 0; n < count; n++) out[n] = dv.getUint32(4 * n, false); break;
    case 'float32': for (let n = 0; n < count; n++) out[n] = dv.getFloat32(4 * n, false); break;
    case 'float64': for (let n = 0; n < count; n++) out[n] = dv.getFloat64(8 * n, false); break;
  }
  return out;
}

/**
 * Parses a NIfTI-1 image held in memory (already gunzipped). For a pair ('ni1'), `imageBytes` holds the .img
 * contents; for a single file ('n+1') the data follow the header in `bytes`.
 */
export function parseNifti(bytes: Uint8Array, source = '<buffer>', imageBytes?: Uint8Array): NiftiImage {
  checkLittleEndianHost();
  const { header, littleEndian } = parseNiftiHeader(bytes, source);
  const info = dataTypeByCode(header.datatype);
  if (!info) {
    const known = UNSUPPORTED_DATATYPES[header.datatype];
    throw new RangeError(`${source}: field datatype is ${header.datatype}${known ? ` (${known})` : ''}, expected one of ${NIFTI_DATATYPES.map((d) => `${d.code} (${d.name})`).join(', ')}`);
  }
  const geometry = fixedGeometry(header);
  const warnings = geometry.warnings.slice();
  if (header.bitpix !== info.bitpix) warnings.push(`bitpix is ${header.bitpix} but datatype ${info.name} has ${info.bitpix} bits; using the datatype (as nibabel does)`);
  const shape = header.dim.slice(1, header.dim[0] + 1);
  const count = elementCount(shape);
  const need = count * info.array.BYTES_PER_ELEMENT;
  let dataBytes: Uint8Array;
  let offset: number;
  if (header.magic === 'n+1') {
    if (!Number.isFinite(header.voxOffset) || header.voxOffset < NIFTI1_SINGLE_VOX_OFFSET)
      throw new RangeError(`${source}: field vox_offset is ${header.voxOffset}, a single-file NIfTI needs at least ${NIFTI1_SINGLE_VOX_OFFSET}`);
    if (imageBytes) throw new TypeError(`${source}: magic "n+1" is a single file, but separate image bytes were given`);
    dataBytes = bytes;
    offset = Math.floor(header.voxOffset);
  } else {
    if (!imageBytes) throw new RangeError(`${source}: magic "ni1" means the data are in a separate .img file; read the .hdr with readNifti`);
    if (!Number.isFinite(header.voxOffset) || header.voxOffset < 0) throw new RangeError(`${source}: field vox_offset is ${header.voxOffset}, expected >= 0`);
    dataBytes = imageBytes;
    offset = Math.floor(header.voxOffset);
  }
  if (offset + need > dataBytes.byteLength)
    throw new RangeError(`${source}: dim [${shape.join(', ')}] of ${info.name} needs ${need} bytes from vox_offset ${offset}, but only ${Math.max(0, dataBytes.byteLength - offset)} follow: the file is truncated or field dim is wrong`);
  const extensions = parseExtensions(bytes, header, littleEndian, offset, source);
  const data = decodeData(dataBytes, offset, count, info, littleEndian);
  const { affine, source: affineSource } = bestAffine(header, source);
  return { source, header, data, shape, affine, affineSource, datatypeName: info.name, littleEndian, extensions, warnings };
}

/** Reads `.nii`, `.nii.gz` (gzip is detected from the bytes), or a `.hdr`/`.img` pair (each optionally gzipped). */
export async function readNifti(path: string): Promise<NiftiImage> {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`readNifti: argument 'path' must be a non-empty string`);
  if (!existsSync(path)) throw new RangeError(`${path}: no such file`);
  const bytes = await maybeGunzip(readFileFully(path), path);
  const pair = /\.hdr(\.gz)?$/i.exec(path);
  if (pair) {
    const base = path.slice(0, pair.index);
    const candidates = [`${base}.img`, `${base}.img.gz`];
    const img = candidates.find((p) => existsSync(p));
    if (!img) throw new RangeError(`${path}: header/image pair without image: none of ${candidates.join(', ')} exists`);
    const imageBytes = await maybeGunzip(readFileFully(img), img);
    return parseNifti(bytes, path, imageBytes);
  }
  return parseNifti(bytes, path);
}

// ---------------------------------------------------------------------------------------------------------------
// Affine helpers (3x3 / 4x4, row-major number[][]).

export function identityAffine(): Affine {
  return [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
}

export function multiplyAffines(a: Affine, b: Affine): Affine {
  const out: Affine = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += a[r][k] * b[k][c];
    out[r][c] = s;
  }
  return out;
}

export function det3(m: readonly (readonly number[])[]): number {
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
    - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

export function invert3(m: readonly (readonly number[])[]): number[][] {
  const d = det3(m);
  if (d === 0 || !Number.isFinite(d)) throw new RangeError(`matrix [[${m.map((r) => r.slice(0, 3).join(', ')).join('], [')}]] is singular`);
  const inv = [
    [m[1][1] * m[2][2] - m[1][2] * m[2][1], m[0][2] * m[2][1] - m[0][1] * m[2][2], m[0][1] * m[1][2] - m[0][2] * m[1][1]],
    [m[1][2] * m[2][0] - m[1][0] * m[2][2], m[0][0] * m[2][2] - m[0][2] * m[2][0], m[0][2] * m[1][0] - m[0][0] * m[1][2]],
    [m[1][0] * m[2][1] - m[1][1] * m[2][0], m[0][1] * m[2][0] - m[0][0] * m[2][1], m[0][0] * m[1][1] - m[0][1] * m[1][0]],
  ];
  for (const row of inv) for (let c = 0; c < 3; c++) row[c] /= d;
  return inv;
}

/** Inverse of an affine whose last row is [0, 0, 0, 1]. */
export function invertAffine(a: Affine): Affine {
  const r = invert3(a);
  const t = [a[0][3], a[1][3], a[2][3]];
  const out: Affine = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) out[i][j] = r[i][j];
    out[i][3] = -(r[i][0] * t[0] + r[i][1] * t[1] + r[i][2] * t[2]);
  }
  return out;
}

/** world = affine x [i, j, k, 1]. */
export function applyAffine(a: Affine, p: readonly number[]): number[] {
  return [0, 1, 2].map((r) => a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3]);
}

/** Voxel sizes: the norms of the affine's first three columns (nibabel voxel_sizes). */
export function affineZooms(a: Affine): number[] {
  return [0, 1, 2].map((c) => Math.hypot(a[0][c], a[1][c], a[2][c]));
}

/** The closest orthogonal matrix to `m` (polar decomposition, by Newton's iteration X <- (X + X^-T) / 2). */
export function closestOrthogonal(m: readonly (readonly number[])[]): number[][] {
  let x = m.map((r) => r.slice(0, 3));
  for (let it = 0; it < 100; it++) {
    const inv = invert3(x);
    const next = x.map((row, i) => row.map((v, j) => 0.5 * (v + inv[j][i])));
    let delta = 0;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) delta = Math.max(delta, Math.abs(next[i][j] - x[i][j]));
    x = next;
    if (delta < 1e-15) break;
  }
  return x;
}

/** Unit quaternion [w, x, y, z] (w >= 0) of a rotation matrix (Shepperd's method; nibabel mat2quat gives the same). */
export function matrixToQuaternion(m: readonly (readonly number[])[]): [number, number, number, number] {
  const t = m[0][0] + m[1][1] + m[2][2];
  let q: [number, number, number, number];
  if (t > 0) {
    const s = Math.sqrt(t + 1) * 2;
    q = [0.25 * s, (m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s];
  } else if (m[0][0] > m[1][1] && m[0][0] > m[2][2]) {
    const s = Math.sqrt(1 + m[0][0] - m[1][1] - m[2][2]) * 2;
    q = [(m[2][1] - m[1][2]) / s, 0.25 * s, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s];
  } else if (m[1][1] > m[2][2]) {
    const s = Math.sqrt(1 + m[1][1] - m[0][0] - m[2][2]) * 2;
    q = [(m[0][2] - m[2][0]) / s, (m[0][1] + m[1][0]) / s, 0.25 * s, (m[1][2] + m[2][1]) / s];
  } else {
    const s = Math.sqrt(1 + m[2][2] - m[0][0] - m[1][1]) * 2;
    q = [(m[1][0] - m[0][1]) / s, (m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, 0.25 * s];
  }
  if (q[0] < 0) q = [-q[0], -q[1], -q[2], -q[3]];
  const n = Math.hypot(...q);
  return [q[0] / n, q[1] / n, q[2] / n, q[3] / n];
}

/**
 * The qform fields for an affine, as nibabel's set_qform computes them: zooms = column norms, qfac = -1 when the
 * normalised rotation has a negative determinant (its third column is then negated), shears stripped by the polar
 * decomposition, quaternion with w >= 0, offsets = the translation.
 */
export function qformFromAffine(a: Affine, source = '<affine>'): { qfac: number; zooms: number[]; quatern: [number, number, number]; offset: [number, number, number] } {
  checkAffine(a, source);
  const zooms = affineZooms(a);
  zooms.forEach((z, c) => { if (!(z > 0)) throw new RangeError(`${source}: affine column ${c} is zero: no voxel size`); });
  const R = [0, 1, 2].map((r) => [0, 1, 2].map((c) => a[r][c] / zooms[c]));
  let qfac = 1;
  if (det3(R) <= 0) {
    qfac = -1;
    for (let r = 0; r < 3; r++) R[r][2] = -R[r][2];
  }
  const q = matrixToQuaternion(closestOrthogonal(R));
  return { qfac, zooms, quatern: [q[1], q[2], q[3]], offset: [a[0][3], a[1][3], a[2][3]] };
}

function checkAffine(a: unknown, source: string): asserts a is Affine {
  if (!Array.isArray(a) || a.length !== 4 || !a.every((r) => Array.isArray(r) && r.length === 4 && r.every((v) => typeof v === 'number' && Number.isFinite(v))))
    throw new TypeError(`${source}: affine must be a 4x4 array of finite numbers (row-major), got ${JSON.stringify(a)?.slice(0, 80)}`);
  const last = a[3];
  if (last[0] !== 0 || last[1] !== 0 || last[2] !== 0 || last[3] !== 1)
    throw new RangeError(`${source}: affine's last row must be [0, 0, 0, 1], got [${last.join(', ')}]`);
  if (det3(a) === 0) throw new RangeError(`${source}: affine's 3x3 part is singular (determinant 0)`);
}

/** Axis codes of an affine as nibabel's aff2axcodes(io_orientation(affine)) gives them, e.g. 'LIA', 'RAS'. */
export function affineAxcodes(a: Affine): string {
  return orientationOfAffine(a).map(([axis, flip]) => (['LR', 'PA', 'IS'][axis])[flip > 0 ? 1 : 0]).join('');
}

/**
 * nibabel io_orientation: for each voxel axis, the world axis (0 = x/L-R, 1 = y/P-A, 2 = z/I-S) it is closest to
 * and the direction (+1 towards R/A/S). The rotation is orthogonalised first (polar decomposition), then axes are
 * assigned greedily by largest absolute component, each world axis used once.
 */
export function orientationOfAffine(a: Affine): Array<[number, number]> {
  const zooms = affineZooms(a).map((z) => (z === 0 ? 1 : z));
  const RS = [0, 1, 2].map((r) => [0, 1, 2].map((c) => a[r][c] / zooms[c]));
  const R = closestOrthogonal(RS);
  const out: Array<[number, number]> = [];
  for (let c = 0; c < 3; c++) {
    let best = 0;
    for (let r = 1; r < 3; r++) if (Math.abs(R[r][c]) > Math.abs(R[best][c])) best = r;
    out.push([best, R[best][c] < 0 ? -1 : 1]);
    for (let cc = 0; cc < 3; cc++) R[best][cc] = 0;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing.

/** Header fields a caller may carry over into a written file; geometry, dims and datatype come from the image. */
export type NiftiHeaderOverrides = Partial<Pick<NiftiHeader,
  'dataTypeLegacy' | 'dbName' | 'extents' | 'sessionError' | 'regular' | 'dimInfo' | 'intentP1' | 'intentP2' |
  'intentP3' | 'intentCode' | 'sliceStart' | 'sclSlope' | 'sclInter' | 'sliceEnd' | 'sliceCode' | 'calMax' |
  'calMin' | 'sliceDuration' | 'toffset' | 'glmax' | 'glmin' | 'descrip' | 'auxFile' | 'qformCode' | 'sformCode' |
  'intentName'>> & {
  /** pixdim[4..7] (time step etc.); pixdim[0..3] always come from the affine. */
  pixdimExtra?: number[];
  /** Temporal unit bits of xyzt_units (0, 8 s, 16 ms, ...); the spatial unit is always mm. */
  timeUnits?: number;
};

export interface NiftiWriteInput {
  /** Values in file order (first index fastest); the array type picks the datatype. */
  data: NiftiData;
  /** 1 to 7 sizes. */
  shape: readonly number[];
  affine: Affine;
  /** Header fields to carry over; by default sform_code = qform_code = 2 (aligned), scl_slope 1, scl_inter 0. */
  header?: NiftiHeaderOverrides;
  extensions?: readonly NiftiExtension[];
}

/** The header fields a file written from `input` gets. */
export function headerForWrite(input: NiftiWriteInput, op = 'writeNifti'): NiftiHeader {
  if (input === null || typeof input !== 'object') throw new TypeError(`${op}: argument 'image' must be an object with data, shape and affine`);
  const info = dataTypeOfArray(input.data);
  if (!info)
    throw new TypeError(`${op}: field 'data' must be one of ${NIFTI_DATATYPES.map((d) => d.array.name).join(', ')}, got ${(input.data as object)?.constructor?.name ?? typeof input.data}`);
  const { shape } = input;
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 7 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1 && d <= 32767))
    throw new RangeError(`${op}: field 'shape' must be 1 to 7 integer sizes in 1..32767, got ${JSON.stringify(shape)}`);
  const count = elementCount(shape);
  if (input.data.length !== count)
    throw new RangeError(`${op}: field 'shape' [${shape.join(', ')}] has ${count} voxels but 'data' has ${input.data.length} elements`);
  checkAffine(input.affine, `${op}: field 'affine'`);
  const o = input.header ?? {};
  const qformCode = o.qformCode ?? XFORM_CODES.aligned;
  const sformCode = o.sformCode ?? XFORM_CODES.aligned;
  for (const [name, v] of [['qformCode', qformCode], ['sformCode', sformCode]] as const)
    if (!Number.isInteger(v) || v < 1 || v > 4) throw new RangeError(`${op}: field 'header.${name}' must be 1..4 (both sform and qform are always written), got ${v}`);
  for (const [name, len] of Object.entries(STRING_FIELDS)) {
    const v = (o as Record<string, unknown>)[name];
    if (v !== undefined && (typeof v !== 'string' || Buffer.byteLength(v, 'latin1') > len || /[^\x01-\xff]/.test(v)))
      throw new RangeError(`${op}: field 'header.${name}' must be a latin-1 string of at most ${len} characters without NUL, got ${JSON.stringify(v)}`);
  }
  const q = qformFromAffine(input.affine, `${op}: field 'affine'`);
  const pixdim = [q.qfac, q.zooms[0], q.zooms[1], q.zooms[2], 0, 0, 0, 0];
  if (shape.length > 3) for (let k = 3; k < shape.length; k++) pixdim[k + 1] = 1;
  if (o.pixdimExtra) o.pixdimExtra.slice(0, 4).forEach((v, k) => { pixdim[4 + k] = v; });
  const dim = [shape.length, 1, 1, 1, 1, 1, 1, 1];
  shape.forEach((d, k) => { dim[k + 1] = d; });
  const extSize = (input.extensions ?? []).reduce((s, e) => s + extensionSize(e), 0);
  const a = input.affine;
  return {
    sizeofHdr: NIFTI1_HEADER_SIZE,
    dataTypeLegacy: o.dataTypeLegacy ?? '',
    dbName: o.dbName ?? '',
    extents: o.extents ?? 0,
    sessionError: o.sessionError ?? 0,
    regular: o.regular ?? 0,
    dimInfo: o.dimInfo ?? 0,
    dim,
    intentP1: o.intentP1 ?? 0,
    intentP2: o.intentP2 ?? 0,
    intentP3: o.intentP3 ?? 0,
    intentCode: o.intentCode ?? 0,
    datatype: info.code,
    bitpix: info.bitpix,
    sliceStart: o.sliceStart ?? 0,
    pixdim,
    voxOffset: NIFTI1_SINGLE_VOX_OFFSET + extSize,
    sclSlope: o.sclSlope ?? 1,
    sclInter: o.sclInter ?? 0,
    sliceEnd: o.sliceEnd ?? 0,
    sliceCode: o.sliceCode ?? 0,
    xyztUnits: NIFTI_UNITS_MM | ((o.timeUnits ?? 0) & 0x38),
    calMax: o.calMax ?? 0,
    calMin: o.calMin ?? 0,
    sliceDuration: o.sliceDuration ?? 0,
    toffset: o.toffset ?? 0,
    glmax: o.glmax ?? 0,
    glmin: o.glmin ?? 0,
    descrip: o.descrip ?? '',
    auxFile: o.auxFile ?? '',
    qformCode,
    sformCode,
    quaternB: q.quatern[0],
    quaternC: q.quatern[1],
    quaternD: q.quatern[2],
    qoffsetX: q.offset[0],
    qoffsetY: q.offset[1],
    qoffsetZ: q.offset[2],
    srowX: a[0].slice(),
    srowY: a[1].slice(),
    srowZ: a[2].slice(),
    intentName: o.intentName ?? '',
    magic: 'n+1',
  };
}

function extensionSize(e: NiftiExtension): number {
  // esize covers the 8-byte (esize, ecode) prefix and the data, rounded up to a multiple of 16 (zero padding).
  return Math.ceil((8 + e.data.byteLength) / 16) * 16;
}

/** The header fields a read image would carry into a new file (everything but geometry, dims and datatype). */
export function headerOverridesFrom(h: NiftiHeader): NiftiHeaderOverrides {
  const valid = (c: number) => (c >= 1 && c <= 4 ? c : undefined);
  return {
    dataTypeLegacy: h.dataTypeLegacy, dbName: h.dbName, extents: h.extents, sessionError: h.sessionError,
    regular: h.regular, dimInfo: h.dimInfo, intentP1: h.intentP1, intentP2: h.intentP2, intentP3: h.intentP3,
    intentCode: h.intentCode, sliceStart: h.sliceStart, sclSlope: h.sclSlope, sclInter: h.sclInter,
    sliceEnd: h.sliceEnd, sliceCode: h.sliceCode, calMax: h.calMax, calMin: h.calMin,
    sliceDuration: h.sliceDuration, toffset: h.toffset, glmax: h.glmax, glmin: h.glmin, descrip: h.descrip,
    auxFile: h.auxFile, qformCode: valid(h.qformCode), sformCode: valid(h.sformCode), intentName: h.intentName,
    pixdimExtra: h.pixdim.slice(4, 8), timeUnits: h.xyztUnits & 0x38,
  };
}

/** The 352 header bytes (header + extension flag) plus extensions, little-endian. */
export function serializeNiftiHeader(h: NiftiHeader, extensions: readonly NiftiExtension[] = []): Buffer {
  const extSize = extensions.reduce((s, e) => s + extensionSize(e), 0);
  const out = Buffer.alloc(NIFTI1_SINGLE_VOX_OFFSET + extSize);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const L = HEADER_LAYOUT;
  const i16 = (o: number, v: number) => dv.setInt16(o, v, true);
  const i32 = (o: number, v: number) => dv.setInt32(o, v, true);
  const f32 = (o: number, v: number) => dv.setFloat32(o, v, true);
  const str = (o: number, len: number, v: string) => { out.write(v.slice(0, len), o, len, 'latin1'); };
  i32(L.sizeofHdr, h.sizeofHdr);
  str(L.dataTypeLegacy, STRING_FIELDS.dataTypeLegacy, h.dataTypeLegacy);
  str(L.dbName, STRING_FIELDS.dbName, h.dbName);
  i32(L.extents, h.extents);
  i16(L.sessionError, h.sessionError);
  dv.setUint8(L.regular, h.regular);
  dv.setUint8(L.dimInfo, h.dimInfo);
  h.dim.forEach((v, k) => i16(L.dim + 2 * k, v));
  f32(L.intentP1, h.intentP1);
  f32(L.intentP2, h.intentP2);
  f32(L.intentP3, h.intentP3);
  i16(L.intentCode, h.intentCode);
  i16(L.datatype, h.datatype);
  i16(L.bitpix, h.bitpix);
  i16(L.sliceStart, h.sliceStart);
  h.pixdim.forEach((v, k) => f32(L.pixdim + 4 * k, v));
  f32(L.voxOffset, h.voxOffset);
  f32(L.sclSlope, h.sclSlope);
  f32(L.sclInter, h.sclInter);
  i16(L.sliceEnd, h.sliceEnd);
  dv.setUint8(L.sliceCode, h.sliceCode);
  dv.setUint8(L.xyztUnits, h.xyztUnits);
  f32(L.calMax, h.calMax);
  f32(L.calMin, h.calMin);
  f32(L.sliceDuration, h.sliceDuration);
  f32(L.toffset, h.toffset);
  i32(L.glmax, h.glmax);
  i32(L.glmin, h.glmin);
  str(L.descrip, STRING_FIELDS.descrip, h.descrip);
  str(L.auxFile, STRING_FIELDS.auxFile, h.auxFile);
  i16(L.qformCode, h.qformCode);
  i16(L.sformCode, h.sformCode);
  f32(L.quaternB, h.quaternB);
  f32(L.quaternC, h.quaternC);
  f32(L.quaternD, h.quaternD);
  f32(L.qoffsetX, h.qoffsetX);
  f32(L.qoffsetY, h.qoffsetY);
  f32(L.qoffsetZ, h.qoffsetZ);
  h.srowX.forEach((v, k) => f32(L.srowX + 4 * k, v));
  h.srowY.forEach((v, k) => f32(L.srowY + 4 * k, v));
  h.srowZ.forEach((v, k) => f32(L.srowZ + 4 * k, v));
  str(L.intentName, STRING_FIELDS.intentName, h.intentName);
  str(L.magic, 4, h.magic);
  // Extension flag (bytes 348..351): 1 then the extensions, else zeros.
  if (extensions.length > 0) {
    out[348] = 1;
    let at = NIFTI1_SINGLE_VOX_OFFSET;
    for (const e of extensions) {
      const size = extensionSize(e);
      dv.setInt32(at, size, true);
      dv.setInt32(at + 4, e.code, true);
      out.set(e.data, at + 8);
      at += size;
    }
  }
  return out;
}

/** The uncompressed file image (header, extension flag, extensions, little-endian data). */
export function serializeNifti(input: NiftiWriteInput, op = 'serializeNifti'): Buffer {
  checkLittleEndianHost();
  const header = headerForWrite(input, op);
  const head = serializeNiftiHeader(header, input.extensions ?? []);
  const data = new Uint8Array(input.data.buffer, input.data.byteOffset, input.data.byteLength);
  const out = Buffer.allocUnsafeSlow(head.length + data.byteLength);
  head.copy(out, 0);
  out.set(data, head.length);
  return out;
}


/**
 * Writes `.nii` or `.nii.gz` (gzip when the name ends in .gz), little-endian, sform and qform both set from the
 * affine. Written to `<path>.tmp-<pid>-<n>`, flushed, then renamed over `path`; the temporary is removed on failure.
 */
export async function writeNifti(path: string, input: NiftiWriteInput, options: { gzipLevel?: number } = {}): Promise<void> {
  if (typeof path !== 'string' || !/\.nii(\.gz)?$/i.test(path))
    throw new TypeError(`writeNifti: argument 'path' must end in .nii or .nii.gz, got ${JSON.stringify(path)}`);
  const level = options.gzipLevel ?? zlibConstants.Z_DEFAULT_COMPRESSION;
  if (!Number.isInteger(level) || level < -1 || level > 9) throw new RangeError(`writeNifti: option 'gzipLevel' must be -1..9, got ${level}`);
  let bytes: Uint8Array = serializeNifti(input, 'writeNifti');
  if (/\.gz$/i.test(path)) bytes = await gzipAsync(bytes, { level });
  await writeFileAtomically(path, [bytes]);
}
