/**
 * Attention throughput: the thesis mask UNet's level-1 self-attention (1 head, head dim 512,
 * 2304 tokens = 12 x 16 x 12) by default, per backend and thread count. FLOPs counted as
 * 2 * Tq * Tk * (Dh + Dv) * heads * batch (the two matrix products; softmax not counted).
 *
 *   node --import=tsx bench/attention.bench.ts                 # native + wasm, 1 and 2 threads
 *   node --import=tsx bench/attention.bench.ts --native --threads 2 --tokens 2304 --dim 512 --heads 1
 */
import { parseArgs } from 'node:util';
import { createBackend } from '../ts/backend/select.js';
import { loadNativeAddon } from '../ts/backend/native-binding.js';
import type { Backend, BackendName } from '../ts/backend/types.js';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string' }, kv: { type: 'string' }, dim: { type: 'string' }, heads: { type: 'string' },
    threads: { type: 'string' }, native: { type: 'boolean' }, repeats: { type: 'string' },
  },
});
const tq = Number(values.tokens ?? 2304);
const tk = Number(values.kv ?? tq);
const heads = Number(values.heads ?? 1);
const dim = Number(values.dim ?? 512);  // per head
const repeats = Number(values.repeats ?? 5);
const threadList = values.threads ? [Number(values.threads)] : [1, 2];
const flops = 2 * tq * tk * 2 * dim * heads;

interface Config { label: string; name: BackendName; isa?: string; threads: number }
const configs: Config[] = [];
let isas: string[] = [];
try { isas = loadNativeAddon().addon.supportedIsas().filter((i) => i !== 'scalar'); } catch { /* not built */ }
for (const isa of isas) for (const threads of threadList) configs.push({ label: `native/${isa}`, name: 'native', isa, threads });
if (!values.native) for (const threads of threadList) configs.push({ label: 'wasm-simd-threads', name: 'wasm-simd-threads', threads });

function randomData(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = s / 2 ** 32 - 0.5; }
  return a;
}

console.log(`attention: heads ${heads}, head dim ${dim}, Tq ${tq}, Tk ${tk}, ${(flops / 1e9).toFixed(2)} GFLOP per call`);
for (const c of configs) {
  let backend: Backend;
  try {
    backend = await createBackend(c.name, { isa: c.isa, threads: c.threads });
  } catch (e) {
    console.log(`${c.label} x${c.threads}: skipped (${(e as Error).message})`);
    continue;
  }
  const q = backend.tensor([1, heads * dim, tq], randomData(heads * dim * tq, 1));
  const k = backend.tensor([1, heads * dim, tk], randomData(heads * dim * tk, 2));
  const v = backend.tensor([1, heads * dim, tk], randomData(heads * dim * tk, 3));
  const y = backend.tensor([1, heads * dim, tq]);
  const run = () => backend.runOp('attention', [q, k, v], { heads }, [y]);
  await run();  // warm-up (scratch allocation)
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const peak = await backend.probePeakGflops(0.2);
  const gflops = flops / (median * 1e-3) * 1e-9;
  console.log(`${c.label.padEnd(20)} x${c.threads}  median ${median.toFixed(1)} ms  (min ${times[0].toFixed(1)})  ${gflops.toFixed(1)} GFLOP/s  = ${(100 * gflops / peak).toFixed(0)}% of ${peak.toFixed(0)} GFLOP/s peak`);
  await backend.dispose();
}
