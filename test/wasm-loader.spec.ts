/**
 * Loads each WebAssembly variant (built by `npm run build:wasm`), checks what
 * it reports and that its conv3d agrees with a plain JS reference, and checks
 * that the threads variant lets Node exit.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import test from 'ava';

import { createWasmBackend, type WasmBackendName } from '../ts/backend/wasm-backend.js';
import { disposeModule, heapBuffer, loadModule, simdSupported, threadsSupported } from '../ts/backend/wasm-binding.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const backendModule = pathToFileURL(path.join(root, 'ts/backend/wasm-backend.ts')).href;

const VARIANTS: readonly { name: WasmBackendName; isa: string }[] = [
  { name: 'wasm-simd-threads', isa: 'simd128' },
  { name: 'wasm-simd', isa: 'simd128' },
  { name: 'wasm-scalar', isa: 'scalar' },
];

/** Deterministic values in [-1, -0.05] U [0.05, 1]: never zero, so a dropped term always shows. */
function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let r = Math.imul(s ^ (s >>> 15), 1 | s);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    r = (r ^ (r >>> 14)) >>> 0;
    const mag = 0.05 + 0.95 * ((r >>> 1) / 2 ** 31);
    out[i] = r & 1 ? -mag : mag;
  }
  return out;
}

type T3 = [number, number, number];

function referenceConv3d(x: Float32Array, xs: number[], w: Float32Array, ws: number[], b: Float32Array | null,
                         stride: T3, before: T3, after: T3): { data: Float64Array; shape: number[] } {
  const [n, cin, d, h, wd] = xs;
  const [cout, , kd, kh, kw] = ws;
  const od = Math.floor((d + before[0] + after[0] - kd) / stride[0]) + 1;
  const oh = Math.floor((h + before[1] + after[1] - kh) / stride[1]) + 1;
  const ow = Math.floor((wd + before[2] + after[2] - kw) / stride[2]) + 1;
  const y = new Float64Array(n * cout * od * oh * ow);
  let idx = 0;
  for (let bn = 0; bn < n; bn++)
    for (let co = 0; co < cout; co++)
      for (let z = 0; z < od; z++)
        for (let yy = 0; yy < oh; yy++)
          for (let xx = 0; xx < ow; xx++) {
            let acc = b ? b[co] : 0;
            for (let ci = 0; ci < cin; ci++)
              for (let a = 0; a < kd; a++) {
                const iz = z * stride[0] - before[0] + a;
                if (iz < 0 || iz >= d) continue;
                for (let c = 0; c < kh; c++) {
                  const iy = yy * stride[1] - before[1] + c;
                  if (iy < 0 || iy >= h) continue;
                  for (let e = 0; e < kw; e++) {
                    const ix = xx * stride[2] - before[2] + e;
                    if (ix < 0 || ix >= wd) continue;
                    acc += x[(((bn * cin + ci) * d + iz) * h + iy) * wd + ix] * w[(((co * cin + ci) * kd + a) * kh + c) * kw + e];
                  }
                }
              }
            y[idx++] = acc;
          }
  return { data: y, shape: [n, cout, od, oh, ow] };
}

function maxAbsDiff(a: Float32Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const CASES: { label: string; xs: number[]; ws: number[]; bias: boolean; stride: T3; before: T3; after: T3 }[] = [
  { label: '3x3x3 pad 1', xs: [2, 3, 5, 6, 7], ws: [5, 3, 3, 3, 3], bias: true, stride: [1, 1, 1], before: [1, 1, 1], after: [1, 1, 1] },
  { label: 'stride (2,1,2), asymmetric pad', xs: [1, 4, 7, 5, 9], ws: [6, 4, 3, 2, 3], bias: false, stride: [2, 1, 2], before: [0, 1, 0], after: [1, 0, 1] },
  { label: '1x1x1', xs: [1, 8, 3, 4, 5], ws: [3, 8, 1, 1, 1], bias: true, stride: [1, 1, 1], before: [0, 0, 0], after: [0, 0, 0] },
];

for (const { name, isa } of VARIANTS) {
  test(`${name}: loads, reports its ISA, conv3d matches the JS reference`, async (t) => {
    const backend = await createWasmBackend(name, { threads: 2 });
    try {
      const info = backend.info();
      t.is(backend.name, name);
      t.is(info.backend, name);
      t.is(info.isa, isa);
      t.is(info.threads, name === 'wasm-simd-threads' ? 2 : 1);
      t.regex(info.compiler, /^emscripten \d+\.\d+\.\d+$/);
      t.is(typeof info.coreVersion, 'string');

      let seed = 1;
      for (const c of CASES) {
        const xData = random(c.xs.reduce((a, b) => a * b, 1), seed++);
        const wData = random(c.ws.reduce((a, b) => a * b, 1), seed++);
        const bData = c.bias ? random(c.ws[0], seed++) : null;
        const x = backend.tensor(c.xs, xData);
        const w = backend.tensor(c.ws, wData);
        const b = bData ? backend.tensor([c.ws[0]], bData) : null;
        const y = await backend.conv3d(x, w, b, { stride: c.stride, padding: { before: c.before, after: c.after } });
        const ref = referenceConv3d(xData, c.xs, wData, c.ws, bData, c.stride, c.before, c.after);
        t.deepEqual([...y.shape], ref.shape, c.label);
        const got = y.read() as Float32Array;
        t.true(got.some((v) => v !== 0), `${c.label}: output is all zeros`);
        const diff = maxAbsDiff(got, ref.data);
        t.true(diff < 1e-4, `${c.label}: max |wasm - reference| = ${diff}`);
        for (const tensor of [x, w, b, y]) tensor?.dispose();
      }
    } finally {
      await backend.dispose();
    }
  });
}

test('wasm-simd: elementwise ops, concat beyond the scratch area, 16-bit storage, heap growth', async (t) => {
  const backend = await createWasmBackend('wasm-simd', {});
  try {
    const shape = [2, 4, 3, 3, 3];
    const aData = random(216, 11);
    const bData = random(216, 12);
    const a = backend.tensor(shape, aData);
    const b = backend.tensor(shape, bData);
    const sum = (await backend.add(a, b)).read() as Float32Array;
    t.true(sum.every((v, i) => Math.abs(v - (aData[i] + bData[i])) < 1e-6));
    const silu = (await backend.silu(a)).read() as Float32Array;
    t.true(silu.every((v, i) => Math.abs(v - aData[i] / (1 + Math.exp(-aData[i]))) < 1e-5));

    // 40 inputs need more descriptors than the scratch area first holds.
    const parts = Array.from({ length: 40 }, (_, i) => backend.tensor([1, 1, 2], new Float32Array([i + 1, -i - 1])));
    const cat = (await backend.concat(parts)).read() as Float32Array;
    t.deepEqual([...cat], parts.flatMap((_, i) => [i + 1, -i - 1]));

    const half = backend.tensor([3], new Uint16Array([0x3f80, 0x4000, 0xc040]), 'bfloat16');
    t.deepEqual([...half.read()], [0x3f80, 0x4000, 0xc040]);
    await t.throwsAsync(() => backend.silu(half), { instanceOf: TypeError });

    // 64 MiB forces the heap past its 16 MiB start, replacing its buffer:
    // tensors made before must still read and write through fresh views.
    const big = backend.tensor([16, 1024, 1024]);
    t.deepEqual([...(a.read() as Float32Array)], [...aData]);
    big.write(new Float32Array(big.size).fill(2));
    t.is((big.read() as Float32Array)[big.size - 1], 2);
    big.dispose();
  } finally {
    await backend.dispose();
  }
});

test('the feature probes agree with this Node', (t) => {
  t.true(simdSupported());
  t.true(threadsSupported());
});

test('C ABI: core errors come back with their kind and message, and the instance stays usable', async (t) => {
  const mod = await loadModule('scalar');
  try {
    const scratch = mod._bl_malloc(1024) >>> 0;
    mod.stringToUTF8('avx512', scratch, 64);
    t.is(mod._bl_context_create(1, scratch), 0);
    t.is(mod._bl_last_error_kind(), 2);
    t.regex(mod.UTF8ToString(mod._bl_last_error()), /isa 'avx512' is not supported/);

    const ctx = mod._bl_context_create(1, 0) >>> 0;
    t.not(ctx, 0);
    t.deepEqual(JSON.parse(mod.UTF8ToString(mod._bl_context_info(ctx))).isa, 'scalar');
    const data = mod._bl_malloc(64) >>> 0;
    const desc = (at: number, dtype: number, ptr: number) => {
      const i32 = new Int32Array(heapBuffer(mod), scratch + at, 11);
      i32.set([dtype, 1, 4, 0, 0, 0, 0, 0, 0, 0, ptr | 0]);
      return scratch + at;
    };
    // bfloat16 storage is accepted as a tensor but not by the fp32 ops.
    t.is(mod._bl_silu(ctx, desc(0, 1, data), desc(64, 1, data)), 1);
    t.regex(mod.UTF8ToString(mod._bl_last_error()), /silu: argument 'input' has dtype bfloat16, expected float32/);
    // A descriptor pointing past the heap fails the call instead of trapping the instance.
    t.is(mod._bl_silu(ctx, desc(0, 0, 0xfffffff0), desc(64, 0, data)), 2);
    t.regex(mod.UTF8ToString(mod._bl_last_error()), /past the heap size/);
    t.is(mod._bl_silu(ctx, desc(0, 0, data), desc(64, 0, data)), 0);
    t.is(mod._bl_last_error_kind(), 0);
    mod._bl_context_destroy(ctx);
  } finally {
    disposeModule(mod);
  }
});

test('a runtime without SharedArrayBuffer gets a reason for wasm-simd-threads and still loads wasm-simd', async (t) => {
  const code = [
    // As in a browser page without cross-origin isolation. (V8's
    // --no-harmony-sharedarraybuffer would also break tsx's loader thread.)
    `delete globalThis.SharedArrayBuffer;`,
    `const { createWasmBackend } = await import(${JSON.stringify(backendModule)});`,
    `const err = await createWasmBackend('wasm-simd-threads', {}).then(() => null, (e) => e);`,
    `console.log('threads:', err && err.constructor.name, err && err.message);`,
    `const b = await createWasmBackend('wasm-simd', {});`,
    `console.log('simd:', b.info().isa);`,
    `await b.dispose();`,
  ].join('\n');
  const { stdout } = await run(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], {
    cwd: root,
    timeout: 60_000,
  });
  t.regex(stdout, /threads: Error .*SharedArrayBuffer/);
  t.regex(stdout, /simd: simd128/);
});

test('a variant that is not built names `npm run build:wasm`', async (t) => {
  const empty = mkdtempSync(path.join(os.tmpdir(), 'brain-ldm-nowasm-'));
  try {
    for (const { name } of VARIANTS) {
      const err = await t.throwsAsync(() => createWasmBackend(name, { distDir: empty }));
      t.regex(err?.message ?? '', /npm run build:wasm/);
      t.true(err?.constructor === Error, 'a plain Error, so the selector falls back instead of rethrowing');
      t.false(err?.message.includes('\n'));
    }
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('a process that uses the threads variant exits by itself, with and without dispose', async (t) => {
  for (const dispose of [true, false]) {
    const code = [
      `import { createWasmBackend } from ${JSON.stringify(backendModule)};`,
      `const b = await createWasmBackend('wasm-simd-threads', { threads: 2 });`,
      `const x = b.tensor([1, 2, 6, 6, 6], new Float32Array(432).fill(1));`,
      `const w = b.tensor([4, 2, 3, 3, 3], new Float32Array(216).fill(0.5));`,
      `const y = await b.conv3d(x, w, null, { padding: 1 });`,
      `console.log('center', y.read()[3 * 36 + 3 * 6 + 3]);`,
      dispose ? `await b.dispose();` : '',
    ].join('\n');
    const started = Date.now();
    const { stdout } = await run(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], {
      cwd: root,
      timeout: 60_000,
    });
    t.regex(stdout, /center 27\b/, `dispose=${dispose}`);
    t.log(`dispose=${dispose}: child exited after ${Date.now() - started} ms`);
  }
});
