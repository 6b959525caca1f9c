/**
 * Direct vs Winograd F(2,3) (and, with --algs, any conv3d algorithms: 1 direct, 2 winograd, 3 gathered,
 * 4 winograd4 = F(4,3)) on the 3x3x3 convolutions of the networks we run, on one backend (native unless --backend), timed
 * in alternation
 * (direct, winograd, direct, ...) so machine noise hits all alike. GFLOP/s counts the direct algorithm's
 * 2 * Cin * Cout * 27 flops per output voxel for all, so it is "effective" throughput: Winograd above the FMA
 * peak is expected. runOp has no layer to keep Winograd's transformed weights in, so every call here transforms
 * them, as a network layer does only above kKeepUBytes (ops/conv3d_winograd.cpp).
 *
 *   node --import=tsx bench/conv3d-algorithms.bench.ts [--threads 2] [--repeat 5] [--isa avx2] [--precision bf16] [--only 256->256@24x32x24]
 *     [--algs 2,4] [--batch 2] [--backend wasm-simd-threads] [--shapes 'cin,cout,D,H,W;...' (instead of the list below)]
 */
import { parseArgs } from 'node:util';
import { createBackend } from '../ts/backend/select.js';
import type { BackendName } from '../ts/backend/types.js';

const { values } = parseArgs({
  options: { threads: { type: 'string' }, repeat: { type: 'string' }, isa: { type: 'string' }, only: { type: 'string' }, batch: { type: 'string' }, precision: { type: 'string' },
    algs: { type: 'string' }, backend: { type: 'string' }, shapes: { type: 'string' } },
});
const threads = Number(values.threads ?? 2);
const repeat = Number(values.repeat ?? 5);
const batch = Number(values.batch ?? 2);
const algs = (values.algs ?? '1,2').split(',').map(Number);
const names: Record<number, string> = { 0: 'auto', 1: 'direct', 2: 'winograd', 3: 'gathered', 4: 'winograd4' };

// [cin, cout, D, H, W]: the thesis mask UNet's 3x3x3 layers (batch 2 under classifier-free guidance),
// the default-size UNet's, and the issue's 64 -> 64 at 32^3.
const shapes: Array<[number, number, number, number, number]> = [
  [64, 64, 32, 32, 32],
  [256, 256, 24, 32, 24],
  [512, 512, 24, 32, 24],
  [512, 256, 24, 32, 24],
  [512, 512, 12, 16, 12],
  [768, 768, 12, 16, 12],
  [1280, 512, 12, 16, 12],
  [768, 768, 6, 8, 6],
  [1536, 768, 6, 8, 6],
  [64, 64, 16, 20, 16],
  [128, 64, 16, 20, 16],
  [192, 64, 16, 20, 16],
  [128, 128, 16, 20, 16],
  [64, 64, 32, 40, 32],
  [128, 128, 32, 40, 32],
  [128, 128, 8, 10, 8],
  [256, 128, 8, 10, 8],
  [128, 128, 4, 5, 4],
  [256, 128, 4, 5, 4],
  [32, 32, 32, 32, 32],
  [16, 16, 32, 32, 32],
];

if (values.shapes) shapes.splice(0, shapes.length, ...values.shapes.split(';').map((s) => s.split(',').map(Number) as [number, number, number, number, number]));

function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = s / 2 ** 32 - 0.5; }
  return a;
}

const backend = await createBackend((values.backend ?? 'native') as BackendName, { threads, isa: values.isa, precision: values.precision as 'fp32' | 'bf16' | undefined });
console.log(`${values.backend ?? 'native'} ${backend.info().isa} ${backend.info().precision}, ${backend.info().threads} threads, batch ${batch}, median of ${repeat}`);
const label0 = names[algs[0]] ?? String(algs[0]);
console.log(`| layer | ${algs.map((a) => `${names[a] ?? a} ms`).join(' | ')} | ${algs.slice(1).map((a) => `${names[a] ?? a} speed-up`).join(' | ')} | ` +
  `${algs.map((a) => `${names[a] ?? a} GFLOP/s`).join(' | ')} | rel L2 vs ${label0} |`);
console.log(`|---|${algs.map(() => '---|').join('')}${algs.slice(1).map(() => '---|').join('')}${algs.map(() => '---|').join('')}---|`);
for (const [cin, cout, d, h, w] of shapes) {
  const label = `${cin}->${cout} @${d}x${h}x${w}`;
  if (values.only && !label.includes(values.only)) continue;
  const xs = [batch, cin, d, h, w], ws = [cout, cin, 3, 3, 3], ys = [batch, cout, d, h, w];
  const x = backend.tensor(xs, data(xs.reduce((a, b) => a * b), 1));
  const wt = backend.tensor(ws, data(ws.reduce((a, b) => a * b), 2).map((v) => v / Math.sqrt(cin * 27)));
  const outs = algs.map(() => backend.tensor(ys));
  const times: number[][] = algs.map(() => []);
  for (let r = 0; r <= repeat; r++)
    for (let i = 0; i < algs.length; i++) {
      const t0 = performance.now();
      await backend.runOp('conv3d', [x, wt], { padding: 1, algorithm: algs[i] }, [outs[i]]);
      if (r > 0) times[i].push(performance.now() - t0);  // r = 0 warms up
    }
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  const ms = times.map(med);
  const flops = 2 * cin * cout * 27 * batch * d * h * w;
  const ref = outs[0].read() as Float32Array;
  const errs = outs.slice(1).map((o) => {
    const b = o.read() as Float32Array;
    let num = 0, den = 0;
    for (let i = 0; i < ref.length; i++) { num += (ref[i] - b[i]) ** 2; den += ref[i] ** 2; }
    return Math.sqrt(num / den).toExponential(1);
  });
  console.log(`| ${label} | ${ms.map((t) => t.toFixed(1)).join(' | ')} | ${ms.slice(1).map((t) => `${(ms[0] / t).toFixed(2)}x`).join(' | ')} | ` +
    `${ms.map((t) => (flops / t / 1e6).toFixed(0)).join(' | ')} | ${errs.join(', ') || '-'} |`);
  for (const t of [x, wt, ...outs]) t.dispose?.();
}
await backend.dispose();
