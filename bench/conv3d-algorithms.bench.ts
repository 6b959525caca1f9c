/**
 * Direct vs Winograd F(2,3) on the 3x3x3 convolutions of the networks we run, native backend,
 * timed in alternation (direct, winograd, direct, ...) so machine noise hits both alike. GFLOP/s
 * counts the direct algorithm's 2 * Cin * Cout * 27 flops per output voxel for both, so it is
 * "effective" throughput: Winograd above the FMA peak is expected.
 *
 *   node --import=tsx bench/conv3d-algorithms.bench.ts [--threads 2] [--repeat 5] [--isa avx2] [--precision bf16] [--only 256->256@24x32x24]
 */
import { parseArgs } from 'node:util';
import { createBackend } from '../ts/backend/select.js';

const { values } = parseArgs({
  options: { threads: { type: 'string' }, repeat: { type: 'string' }, isa: { type: 'string' }, only: { type: 'string' }, batch: { type: 'string' }, precision: { type: 'string' } },
});
const threads = Number(values.threads ?? 2);
const repeat = Number(values.repeat ?? 5);
const batch = Number(values.batch ?? 2);

// [cin, cout, D, H, W]: the thesis mask UNet's 3x3x3 layers (batch 2 under classifier-free guidance),
// the default-size UNet's, and the 64 -> 64 at 32^3.
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
  [128, 128, 16, 20, 16],
  [128, 128, 8, 10, 8],
  [256, 128, 8, 10, 8],
  [128, 128, 4, 5, 4],
  [256, 128, 4, 5, 4],
  [32, 32, 32, 32, 32],
  [16, 16, 32, 32, 32],
];

function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = s / 2 ** 32 - 0.5; }
  return a;
}

const backend = await createBackend('native', { threads, isa: values.isa, precision: values.precision as 'fp32' | 'bf16' | undefined });
console.log(`native ${backend.info().isa} ${backend.info().precision}, ${backend.info().threads} threads, batch ${batch}, median of ${repeat}`);
console.log('| layer | direct ms | winograd ms | speed-up | direct GFLOP/s | winograd eff. GFLOP/s | rel L2 |');
console.log('|---|---|---|---|---|---|---|');
for (const [cin, cout, d, h, w] of shapes) {
  const label = `${cin}->${cout} @${d}x${h}x${w}`;
  if (values.only && !label.includes(values.only)) continue;
  const xs = [batch, cin, d, h, w], ws = [cout, cin, 3, 3, 3], ys = [batch, cout, d, h, w];
  const x = backend.tensor(xs, data(xs.reduce((a, b) => a * b), 1));
  const wt = backend.tensor(ws, data(ws.reduce((a, b) => a * b), 2).map((v) => v / Math.sqrt(cin * 27)));
  const outs = [backend.tensor(ys), backend.tensor(ys)];
  const times: number[][] = [[], []];
  for (let r = 0; r <= repeat; r++)
    for (const alg of [1, 2]) {
      const t0 = performance.now();
      await backend.runOp('conv3d', [x, wt], { padding: 1, algorithm: alg }, [outs[alg - 1]]);
      if (r > 0) times[alg - 1].push(performance.now() - t0);  // r = 0 warms up
    }
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
  const [td, tw] = times.map(med);
  const flops = 2 * cin * cout * 27 * batch * d * h * w;
  const a = outs[0].read() as Float32Array, b = outs[1].read() as Float32Array;
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += a[i] ** 2; }
  console.log(`| ${label} | ${td.toFixed(1)} | ${tw.toFixed(1)} | ${(td / tw).toFixed(2)}x | ${(flops / td / 1e6).toFixed(0)} | ` +
    `${(flops / tw / 1e6).toFixed(0)} | ${Math.sqrt(num / den).toExponential(1)} |`);
  for (const t of [x, wt, ...outs]) t.dispose?.();
}
await backend.dispose();
