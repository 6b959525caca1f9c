/**
 * Convolution throughput per backend, ISA and thread count, each shown against
 * the same backend's measured FMA peak (probePeakGflops) and against native
 * at the same thread count, all in one run.
 *
 *   npm run bench                  # 64 -> 64 channels, 3x3x3 pad 1, 32^3 (the issue's case)
 *   npm run bench -- --quick       # fewer samples (CI smoke run)
 *   npm run bench -- --json out.json
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { createBackend } from '../ts/backend/select.js';
import { loadNativeAddon } from '../ts/backend/native-binding.js';
import type { Backend, BackendName } from '../ts/backend/types.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, json: { type: 'string' }, size: { type: 'string' }, channels: { type: 'string' } } });
const size = Number(values.size ?? 32);
const channels = Number(values.channels ?? 64);
const shape = [1, channels, size, size, size];
const wshape = [channels, channels, 3, 3, 3];
const flops = 2 * channels * channels * 27 * size ** 3;

interface Config { label: string; name: BackendName; isa?: string; threads: number }

function configs(): Config[] {
  const out: Config[] = [];
  let isas: string[] = [];
  try { isas = loadNativeAddon().addon.supportedIsas(); } catch { /* native not built: skipped below */ }
  for (const isa of isas) for (const threads of [1, 2]) out.push({ label: `native/${isa}`, name: 'native', isa, threads });
  for (const threads of [1, 2]) out.push({ label: 'wasm-simd-threads', name: 'wasm-simd-threads', threads });
  out.push({ label: 'wasm-simd', name: 'wasm-simd', threads: 1 }, { label: 'wasm-scalar', name: 'wasm-scalar', threads: 1 });
  return out;
}

function randomData(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = s / 2 ** 32 - 0.5; }
  return a;
}

interface Row { label: string; isa: string; threads: number; medianMs: number; gflops: number; peak: number; pctPeak: number; vsNative?: number }

const rows: Row[] = [];
const skipped: string[] = [];
for (const c of configs()) {
  let backend: Backend;
  try {
    backend = await createBackend(c.name, { isa: c.isa, threads: c.threads });
  } catch (e) {
    skipped.push(`${c.label} x${c.threads}: ${(e as Error).message}`);
    continue;
  }
  const info = backend.info();
  if (info.threads !== c.threads) { await backend.dispose(); continue; }
  const x = backend.tensor(shape, randomData(shape.reduce((a, b) => a * b), 1));
  const w = backend.tensor(wshape, randomData(wshape.reduce((a, b) => a * b), 2));
  const out = backend.tensor(shape);
  const slow = info.isa === 'scalar';
  const bench = new Bench({ time: values.quick || slow ? 0 : 3000, iterations: values.quick || slow ? 3 : 10, warmup: true, warmupIterations: 1 });
  bench.add(c.label, async () => { await backend.conv3d(x, w, null, { padding: 1, out }); });
  await bench.run();
  const result = bench.tasks[0].result;
  if (result.state !== 'completed') throw new Error(`${c.label}: benchmark ${result.state}`);
  const medianMs = result.latency.p50;
  const peak = await backend.probePeakGflops(values.quick ? 0.1 : 0.3);
  const gflops = flops / (medianMs * 1e-3) * 1e-9;
  rows.push({ label: c.label, isa: info.isa, threads: info.threads, medianMs, gflops, peak, pctPeak: (100 * gflops) / peak });
  await backend.dispose();
}

// Ratio to the best native ISA at the same thread count.
for (const r of rows) {
  const native = rows.filter((n) => n.label.startsWith('native/') && n.threads === r.threads).sort((a, b) => a.medianMs - b.medianMs)[0];
  if (native) r.vsNative = r.medianMs / native.medianMs;
}

console.log(`conv3d ${channels} -> ${channels} channels, 3x3x3 pad 1, input [${shape.join(', ')}], ${(flops / 1e9).toFixed(2)} GFLOP per call`);
console.log(`machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores; node ${process.version}; ${new Date().toISOString().slice(0, 10)}`);
console.log('');
console.log('backend             isa      threads  median ms   GFLOP/s  peak GFLOP/s  % of peak  time vs best native');
for (const r of rows)
  console.log(`${r.label.padEnd(20)}${r.isa.padEnd(9)}${String(r.threads).padStart(7)}${r.medianMs.toFixed(2).padStart(11)}${r.gflops.toFixed(1).padStart(10)}${r.peak.toFixed(1).padStart(14)}${r.pctPeak.toFixed(0).padStart(10)}%${(r.vsNative ? `${r.vsNative.toFixed(2)}x` : '-').padStart(20)}`);
for (const s of skipped) console.log(`skipped ${s}`);
if (values.json) writeFileSync(values.json, JSON.stringify({ shape, flops, rows, skipped }, null, 2));
