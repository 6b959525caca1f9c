import { eachBackend } from '../helpers/backends.js';
import { bf16ToF32BitsRef, bitsToF32, f16ToF32BitsRef, f32Bits, f32ToBf16Ref, f32ToF16Ref, randn, rng } from '../helpers/reference.js';
import type { Backend, DType } from '../../ts/backend/types.js';

// float32 inputs that exercise every rounding path of both 16-bit formats.
function specialFloats(): Float32Array {
  const v: number[] = [0, -0, 1, -1, Infinity, -Infinity, 65504, 65519.99, 65520, 65536, 1e6, -1e6,
    2 ** -14, 2 ** -15, 2 ** -24, 2 ** -25, 2 ** -25 * 1.5, 3 * 2 ** -26, 2 ** -26, 1e-8, 6e-8, 2 ** -24 * 1023.5, 2 ** -24 * 1024.5,
    3.4028234663852886e38, 1.1754943508222875e-38, 1e-40, 1.401298464324817e-45, 2.35e-38, 1e38];
  // Exact halfway cases for fp16 (13 dropped bits) and bf16 (16 dropped bits), both parities.
  for (const base of [1, 1.5, 1024, 0.0009765625, 3 * 2 ** -20])
    for (const half of [2 ** -11, 2 ** -8])
      for (const k of [0, 1, 2, 3]) v.push(base + (k + 0.5) * half * base, -(base + (k + 0.5) * half * base));
  const r = rng(11);
  for (let i = 0; i < 2000; i++) v.push(bitsToF32(Math.floor(r() * 2 ** 32)));  // random bit patterns (NaNs included)
  v.push(...randn(2000, 12, 0, 100));
  return Float32Array.from(v);
}

async function convert(backend: Backend, data: Float32Array | Uint16Array, from: DType, to: DType): Promise<Float32Array | Uint16Array> {
  const x = backend.tensor([data.length], data, from);
  const y = backend.tensor([data.length], undefined, to);
  await backend.runOp('convert_dtype', [x], {}, [y]);
  return y.read();
}

eachBackend('convert_dtype float32 -> float16 rounds to nearest even, bit-exact', async (t, backend) => {
  const x = specialFloats();
  const got = await convert(backend, x, 'float32', 'float16') as Uint16Array;
  const bad = Array.from(x).map((v, i) => [v, got[i], f32ToF16Ref(v)]).filter(([, g, r]) => g !== r);
  t.deepEqual(bad.slice(0, 5), [], `${bad.length} mismatches`);
});

eachBackend('convert_dtype float32 -> bfloat16 rounds to nearest even, bit-exact', async (t, backend) => {
  const x = specialFloats();
  const got = await convert(backend, x, 'float32', 'bfloat16') as Uint16Array;
  const bad = Array.from(x).map((v, i) => [v, got[i], f32ToBf16Ref(v)]).filter(([, g, r]) => g !== r);
  t.deepEqual(bad.slice(0, 5), [], `${bad.length} mismatches`);
});

eachBackend('convert_dtype float16 / bfloat16 -> float32 is exact for all 65536 patterns', async (t, backend) => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (const [dtype, ref] of [['float16', f16ToF32BitsRef], ['bfloat16', bf16ToF32BitsRef]] as const) {
    const got = await convert(backend, all, dtype, 'float32') as Float32Array;
    const bits = new Uint32Array(got.buffer, got.byteOffset, got.length);
    let mismatches = 0;
    for (let i = 0; i < 65536; i++) if (bits[i] !== ref(i)) mismatches++;
    t.is(mismatches, 0, `${dtype} -> float32`);
  }
});

eachBackend('convert_dtype between 16-bit formats rounds once, and same-dtype copies', async (t, backend) => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const toBf = await convert(backend, all, 'float16', 'bfloat16') as Uint16Array;
  const toHalf = await convert(backend, all, 'bfloat16', 'float16') as Uint16Array;
  let bad = 0;
  for (let i = 0; i < 65536; i++) {
    if (toBf[i] !== f32ToBf16Ref(bitsToF32(f16ToF32BitsRef(i)))) bad++;
    if (toHalf[i] !== f32ToF16Ref(bitsToF32(bf16ToF32BitsRef(i)))) bad++;
  }
  t.is(bad, 0);
  t.deepEqual(Array.from(await convert(backend, all.subarray(0, 100), 'float16', 'float16')), Array.from(all.subarray(0, 100)));
  const f = randn(33, 1);
  t.deepEqual(Array.from(await convert(backend, f, 'float32', 'float32')).map(f32Bits), Array.from(f).map(f32Bits));
});

eachBackend('convert_dtype checks shapes; other ops still refuse 16-bit tensors', async (t, backend) => {
  await t.throwsAsync(backend.runOp('convert_dtype', [backend.tensor([4], undefined, 'float16')], {}, [backend.tensor([5])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[5\], expected \[4\]/ });
  await t.throwsAsync(backend.runOp('gelu', [backend.tensor([4], undefined, 'float16')], {}, [backend.tensor([4])]),
    { instanceOf: TypeError, message: /argument 'inputs\[0\]' has dtype float16, expected float32/ });
});
