/**
 * brain-ldm beside the engines it must beat, in one run, on the same networks, weights and inputs: PyTorch (CPU
 * wheel, oneDNN) in fp32 and bf16 autocast, onnxruntime-node in fp32, brain-ldm native (and wasm on request).
 * Each engine runs in its own process so its peak RSS is its own. Prints per network and engine the median forward
 * time, GFLOP/s, % of the machine's measured fp32 FMA peak, peak RSS, the output's relative L2 error against
 * PyTorch fp32, and the ratio anchor time / brain-ldm time (> 1: brain-ldm is faster).
 *
 *   npm run bench:anchors                                      # all three networks, 5 forwards each, 2 threads
 *   npm run bench:anchors -- --networks default-unet --wasm    # one network, wasm simd+threads too
 *   npm run bench:anchors -- --small --repeat 1                # tiny inputs: a smoke run of the whole chain
 *   npm run bench:anchors -- --markdown bench/out/anchors.md --json bench/out/anchors.json
 *   npm run bench:anchors -- --rounds 3                        # engines in rotation, 3 times each
 *
 * On a shared VM the machine's speed drifts by 10-25% within minutes; with --rounds R every engine runs R times in
 * rotation (pytorch, onnxruntime, brain-ldm, pytorch, ...) and its median is taken over all rounds' forwards, so a
 * slow minute hits every engine rather than one.
 *
 * Needs: npm run build:native && npm run build:ts, bash train/setup_venv.sh; installs bench/anchors' own
 * onnxruntime-node on first use. Networks, weights and ONNX files are cached under --work (default
 * /tmp/brain-ldm-anchors; the thesis UNet takes ~2.2 GB on disk).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readSafetensors } from '../../ts/io/safetensors.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const here = fileURLToPath(new URL('.', import.meta.url));
const NETWORKS = ['default-unet', 'thesis-mask-unet', 'spade-decoder'];

const { values } = parseArgs({
  options: {
    networks: { type: 'string', default: NETWORKS.join(',') }, repeat: { type: 'string', default: '5' },
    threads: { type: 'string', default: '2' }, work: { type: 'string', default: '/tmp/brain-ldm-anchors' },
    small: { type: 'boolean', default: false }, wasm: { type: 'boolean', default: false }, rounds: { type: 'string', default: '1' },
    markdown: { type: 'string' }, json: { type: 'string' },
  },
});
const networks = values.networks!.split(',');
for (const n of networks) if (!NETWORKS.includes(n)) throw new RangeError(`--networks: unknown network '${n}'; expected some of ${NETWORKS.join(', ')}`);
const work = join(values.work!, values.small ? 'small' : 'full');
const python = process.env.PYTHON ?? join(root, '.venv/bin/python');

interface Meta { name: string; class: string; entry: string; small: boolean; parameters: number; flops: number; inputs: Record<string, number[]> }
interface EngineResult { engine: string; precision: string; threads: number; median_ms: number; times_ms: number[]; peak_rss_mib: number; output: string }
interface Row extends Partial<EngineResult> { label: string; error?: string; relL2?: number; gflops?: number; pctPeak?: number; ratio?: number }

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`);
  return r.stdout;
}

function medianOf(v: number[]): number {
  const a = [...v].sort((x, y) => x - y);
  return a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
}

function lastJsonLine(out: string): EngineResult {
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`no JSON result in: ${out.slice(-500)}`);
  return JSON.parse(line) as EngineResult;
}

function ensureOnnxRuntime(): void {
  if (existsSync(join(here, 'node_modules/onnxruntime-node/package.json'))) return;
  console.error('bench/anchors: installing onnxruntime-node (bench/anchors/package-lock.json) ...');
  run('npm', ['ci', '--prefix', here, '--ignore-scripts', '--no-audit', '--no-fund'], 'npm ci in bench/anchors');
}

function ensureNetwork(name: string): Meta {
  const dir = join(work, name);
  if (!existsSync(join(dir, 'meta.json'))) {
    console.error(`bench/anchors: building ${name} (weights, inputs, ONNX export) ...`);
    run(python, [join(here, 'networks.py'), 'make', work, name, ...(values.small ? ['--small'] : [])], `networks.py make ${name}`);
  }
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
  if (!existsSync(join(dir, 'bundle/model.json'))) {
    run(process.execPath, [join(root, 'bin/brain-ldm.mjs'), 'import', join(dir, 'model.pth'), '--network', meta.class,
      '--args', `@${join(dir, 'args.json')}`, '--out', join(dir, 'bundle'), '--overwrite'], `brain-ldm import ${name}`);
  }
  return meta;
}

async function relL2(a: string, b: string): Promise<number> {
  const [x, y] = [(await readSafetensors(a)).tensors.get('out')!, (await readSafetensors(b)).tensors.get('out')!];
  if (x.shape.join() !== y.shape.join()) throw new Error(`${a} has shape [${x.shape}], ${b} [${y.shape}]`);
  let num = 0, den = 0;
  for (let i = 0; i < x.data.length; i++) { const d = Number(x.data[i]) - Number(y.data[i]); num += d * d; den += Number(y.data[i]) ** 2; }
  return Math.sqrt(num / den);
}

async function measuredPeak(threads: number): Promise<number> {
  const { loadBackend } = await import('../../ts/backend/select.js');
  const backend = await loadBackend({ backend: 'native', threads });
  try { return await backend.probePeakGflops(0.3); } finally { await backend.dispose(); }
}

const threads = values.threads!;
const repeat = values.repeat!;
const tsx = ['--import=tsx', join(here, 'run-engine.ts')];
const engines: Array<{ label: string; precision: string; cmd: string; args: (dir: string, name: string) => string[] }> = [
  { label: 'pytorch fp32', precision: 'fp32', cmd: python, args: (_dir, name) => [join(here, 'networks.py'), 'run', work, name, '--precision', 'fp32', '--repeat', repeat, '--threads', threads] },
  { label: 'pytorch bf16', precision: 'bf16', cmd: python, args: (_dir, name) => [join(here, 'networks.py'), 'run', work, name, '--precision', 'bf16', '--repeat', repeat, '--threads', threads] },
  { label: 'onnxruntime fp32', precision: 'fp32', cmd: process.execPath, args: (dir) => [...tsx, 'onnxruntime', dir, '--repeat', repeat, '--threads', threads] },
  { label: 'brain-ldm native fp32', precision: 'fp32', cmd: process.execPath, args: (dir) => [...tsx, 'brain-ldm', dir, '--repeat', repeat, '--threads', threads, '--backend', 'native'] },
  { label: 'brain-ldm native bf16', precision: 'bf16', cmd: process.execPath, args: (dir) => [...tsx, 'brain-ldm', dir, '--repeat', repeat, '--threads', threads, '--backend', 'native', '--precision', 'bf16'] },
];
if (values.wasm)
  engines.push({ label: 'brain-ldm wasm-simd-threads fp32', precision: 'fp32', cmd: process.execPath, args: (dir) => [...tsx, 'brain-ldm', dir, '--repeat', repeat, '--threads', threads, '--backend', 'wasm-simd-threads'] });

ensureOnnxRuntime();
mkdirSync(work, { recursive: true });
const peak = await measuredPeak(Number(threads));
const report: Array<{ meta: Meta; rows: Row[] }> = [];
for (const name of networks) {
  const meta = ensureNetwork(name);
  const dir = join(work, name);
  const rounds = Number(values.rounds);
  const results = new Map<string, { runs: EngineResult[]; error?: string }>(engines.map((e) => [e.label, { runs: [] }]));
  for (let round = 0; round < rounds; round++)
    for (const e of engines) {
      const slot = results.get(e.label)!;
      if (slot.error) continue;
      try {
        slot.runs.push(lastJsonLine(run(e.cmd, e.args(dir, name), `${e.label} on ${name}`)));
        console.error(`bench/anchors: ${name} ${e.label} round ${round + 1}/${rounds} ${slot.runs.at(-1)!.median_ms.toFixed(1)} ms`);
      } catch (err) {
        slot.error = (err as Error).message;
        console.error(`bench/anchors: ${name} ${e.label} failed`);
      }
    }
  const rows: Row[] = engines.map((e) => {
    const slot = results.get(e.label)!;
    if (slot.error || slot.runs.length === 0) return { label: e.label, precision: e.precision, error: slot.error ?? 'no run' };
    const times = slot.runs.flatMap((r) => r.times_ms);
    const r: EngineResult = { ...slot.runs.at(-1)!, times_ms: times, median_ms: medianOf(times),
      peak_rss_mib: Math.max(...slot.runs.map((x) => x.peak_rss_mib)) };
    return { label: e.label, ...r, gflops: meta.flops / (r.median_ms * 1e6) };
  });
  const reference = join(dir, 'out_torch_fp32.safetensors');
  // Each anchor against brain-ldm native at the anchor's own precision (PyTorch bf16 autocast vs brain-ldm bf16).
  const brain = (precision: string) => rows.find((r) => r.label === `brain-ldm native ${precision}` && !r.error);
  for (const r of rows) {
    if (r.error) continue;
    r.pctPeak = (100 * r.gflops!) / peak;
    if (r.output && r.label !== 'pytorch fp32' && existsSync(reference)) r.relL2 = await relL2(join(dir, r.output), reference);
    const mine = brain(r.precision!);
    if (mine && !r.label.startsWith('brain-ldm')) r.ratio = r.median_ms! / mine.median_ms!;
  }
  report.push({ meta, rows });
}

const date = new Date().toISOString().slice(0, 10);
const lines: string[] = [
  `machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores; node ${process.version}; ${date}`,
  `command: npm run bench:anchors -- ${process.argv.slice(2).join(' ')}`.trimEnd(),
  `threads ${threads}; median of ${repeat} forwards after one warm-up${Number(values.rounds) > 1 ? `, in each of ${values.rounds} rounds of all engines in rotation (median over all)` : ''}; measured fp32 FMA peak ${peak.toFixed(1)} GFLOP/s (native, ${threads} threads)`,
  `FLOPs: convolutions and matrix products, 2 per multiply-add (torch.utils.flop_counter). ratio = anchor time / brain-ldm native time at the anchor's precision (> 1: brain-ldm faster).`,
];
for (const { meta, rows } of report) {
  lines.push('', `### ${meta.name}: ${meta.class}.${meta.entry}, ${(meta.parameters / 1e6).toFixed(1)}M parameters, ` +
    `${Object.entries(meta.inputs).map(([k, s]) => `${k} [${s.join(', ')}]`).join(', ')}, ${(meta.flops / 1e9).toFixed(1)} GFLOP`, '');
  lines.push('| engine | median ms | GFLOP/s | % of fp32 peak | peak RSS MiB | rel. L2 vs PyTorch fp32 | anchor / brain-ldm |', '|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (r.error) { lines.push(`| ${r.label} | failed: ${r.error.split('\n')[0].slice(0, 120)} | | | | | |`); continue; }
    lines.push(`| ${r.engine} ${r.precision} | ${r.median_ms!.toFixed(1)} | ${r.gflops!.toFixed(1)} | ${r.pctPeak!.toFixed(0)}% | ` +
      `${r.peak_rss_mib!.toFixed(0)} | ${r.relL2 === undefined ? 'reference' : r.relL2.toExponential(2)} | ${r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`} |`);
  }
}
const text = lines.join('\n');
console.log(text);
if (values.markdown) writeFileSync(values.markdown, `${text}\n`);
if (values.json) writeFileSync(values.json, JSON.stringify({ date, threads: Number(threads), repeat: Number(repeat), peakGflops: peak, report }, null, 2));
