/**
 * Minimal PNG encoder for 8-bit RGB images (PNG 1.2 / ISO 15948: signature, IHDR, one IDAT, IEND; filter 0 on
 * every row, zlib deflate). Hand-written because node:zlib already does the hard parts (deflate, crc32), which keeps
 * the library free of a runtime dependency for ~30 lines; decoding is not needed at run time. Output bytes depend
 * only on the pixels (fixed zlib level and strategy, no timestamps or text chunks).
 */
import { crc32, deflateSync } from 'node:zlib';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const COLOR_TYPE_RGB = 2;
/** PNG limits width and height to 2^31 - 1; far beyond anything we render, but keep the check honest. */
const MAX_SIDE = 0x7fffffff;

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** PNG bytes of a `width` x `height` image; `rgb` holds R, G, B per pixel, rows top to bottom. */
export function encodePngRgb(width: number, height: number, rgb: Uint8Array): Uint8Array {
  for (const [name, v] of [['width', width], ['height', height]] as const)
    if (!Number.isSafeInteger(v) || v < 1 || v > MAX_SIDE) throw new RangeError(`encodePngRgb: argument '${name}' must be an integer in 1..${MAX_SIDE}, got ${v}`);
  if (!(rgb instanceof Uint8Array) || rgb.length !== width * height * 3)
    throw new RangeError(`encodePngRgb: argument 'rgb' must be a Uint8Array of width x height x 3 = ${width * height * 3} bytes, got ${rgb instanceof Uint8Array ? rgb.length : (rgb as object)?.constructor?.name}`);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = COLOR_TYPE_RGB;
  // bytes 10-12: compression 0 (deflate), filter method 0, no interlace
  const stride = width * 3;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1); // filter byte 0
  const idat = deflateSync(raw, { level: 9 });
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]);
}
