/**
 * One engine, one network, one process (so peak RSS is the engine's own): brain-ldm (a bundle imported from the
 * same .pth PyTorch runs) or onnxruntime-node (the same network exported to ONNX by networks.py), on the inputs
 * PyTorch uses. One warm-up, then `--repeat` timed forwards; prints one JSON line and writes the output.
 *
 *   node --import=tsx bench/anchors/run-engine.ts brain-ldm   DIR/NAME --repeat 5 --threads 2 [--backend native] [--precision bf16]
 *   node --import=tsx bench/anchors/run-engine.ts onnxruntime DIR/NAME --repeat 5 --threads 2
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readSafetensors, writeSafetensors, type HostTensor } from '../../ts/io/safetensors.js';

interface Meta { entry: string; inputs: Record<string, number[]> }
type Forward = () => Promise<{ shape: number[]; data: Float32Array }>;

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function readInputs(dir: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const file = await readSafetensors(join(dir, 'inputs.safetensors'));
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of file.tensors) {
    if (!(t.data instanceof Float32Array)) throw new TypeError(`${dir}/inputs.safetensors: '${name}' must be F32, got ${t.dtype}`);
    out.set(name, { shape: [...t.shape], data: t.data });
  }
  return out;
}

async function brainLdm(dir: string, threads: number, backendName?: string, precision?: string): Promise<{ forward: Forward; label: string; close(): Promise<void> }> {
  const { loadBackend } = await import('../../ts/backend/select.js');
  const { loadNetwork } = await import('../../ts/nets/network.js');
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
  const inputs = Object.fromEntries(await readInputs(dir));
  const backend = await loadBackend({ backend: (backendName ?? 'native') as never, threads, precision: precision as never });
  const { network } = await loadNetwork(backend, join(dir, 'bundle'));
  const info = backend.info();
  return {
    label: `brain-ldm ${info.backend} (${info.isa})`,
    forward: async () => {
      const outputs = await network.run(meta.entry, inputs);
      const t = outputs.out;
      return { shape: [...t.shape], data: t.data };
    },
    close: async () => { await network.dispose(); await backend.dispose(); },
  };
}

async function onnxRuntime(dir: string, threads: number): Promise<{ forward: Forward; label: string; close(): Promise<void> }> {
  // Resolved from bench/anchors/node_modules (its own package.json): the main install stays free of a 290 MB runtime.
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
  for (const [name, t] of await readInputs(dir)) feeds[name] = new ort.Tensor('float32', t.data, t.shape);
  const version = (JSON.parse(readFileSync(new URL('node_modules/onnxruntime-node/package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return {
    label: `onnxruntime-node ${version}`,
    forward: async () => {
      const r = await session.run(feeds);
      const t = r[session.outputNames[0]];
      return { shape: t.dims.map(Number), data: t.data as Float32Array };
    },
    close: async () => { await session.release(); },
  };
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { repeat: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' }, backend: { type: 'string' }, precision: { type: 'string', default: 'fp32' } },
});
const [engine, dir] = positionals;
if (!['brain-ldm', 'onnxruntime'].includes(engine) || !dir) {
  console.error('usage: run-engine.ts brain-ldm|onnxruntime DIR/NAME [--repeat N] [--threads T] [--backend native|wasm-simd-threads|...]');
  process.exit(2);
}
const threads = Number(values.threads);
const repeat = Number(values.repeat);
const e = engine === 'brain-ldm' ? await brainLdm(dir, threads, values.backend, values.precision) : await onnxRuntime(dir, threads);
let y = await e.forward();
const times: number[] = [];
for (let i = 0; i < repeat; i++) {
  const t0 = performance.now();
  y = await e.forward();
  times.push(performance.now() - t0);
}
const outName = `out_${engine === 'brain-ldm' ? `brain-ldm_${values.backend ?? 'native'}_${values.precision}` : 'onnxruntime'}.safetensors`;
const tensors = new Map<string, HostTensor>([['out', { dtype: 'F32', shape: y.shape, data: Float32Array.from(y.data) }]]);
await writeSafetensors(join(dir, outName), tensors, { engine: e.label });
await e.close();
console.log(JSON.stringify({ engine: e.label, precision: engine === 'brain-ldm' ? values.precision : 'fp32', threads, median_ms: median(times), times_ms: times,
  peak_rss_mib: process.resourceUsage().maxRSS / 1024, output: outName }));
