/**
 * End to end: seconds per labeled pair (mask + T1 image, NIfTI files written) with a generator's defaults
 * (DPM-Solver++ 20 steps, classifier-free guidance), brain-ldm native fp32 and bf16, next to the thesis recipe in
 * PyTorch (DDPM 1000 steps per stage, projected from the measured per-step time of the same networks;
 * bench/pair_pytorch.py) and to PyTorch running the same 20 steps. One run, one machine.
 *
 *   npm run bench:pair -- [--generator models/default] [--config train/configs/cpu-reduced-2x-tuned.yaml] [--count 4]
 *                         [--threads 2] [--markdown FILE] [--wasm]
 *
 * --wasm adds brain-ldm on wasm simd+threads (fp32), the backend CI jobs and browsers run.
 *
 * --config must describe the generator's networks: the default is the config of models/default's four networks
 * (v6/v7: its mask stages are cpu-reduced-2x-tuned's; its image stages, kept from v4, have the same networks there).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    generator: { type: 'string', default: join(root, 'models/default') },
    config: { type: 'string', default: join(root, 'train/configs/cpu-reduced-2x-tuned.yaml') },
    count: { type: 'string', default: '4' },
    threads: { type: 'string', default: '2' },
    markdown: { type: 'string' },
    wasm: { type: 'boolean', default: false },
  },
});
const python = process.env.PYTHON ?? join(root, '.venv/bin/python');

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-4).join('\n')}`);
  return `${r.stdout}\n${r.stderr}`;
}

/** Seconds per pair from `generate`'s own "generated N samples ... in T s" (model loading excluded). */
function brainLdmSecondsPerPair(precision: string, backend: string): number {
  const out = mkdtempSync(join(tmpdir(), `brain-ldm-pair-${backend}-${precision}-`));
  try {
    const count = Number(values.count);
    const text = run(process.execPath, [join(root, 'bin/brain-ldm.mjs'), 'generate', values.generator!, '--out', join(out, 'pairs'),
      '--count', String(count), '--ventricle-volume', '80', '--threads', values.threads!, '--precision', precision, '--backend', backend]);
    const m = /generated (\d+) samples? into .* in ([\d.]+) s/.exec(text);
    if (!m) throw new Error(`no timing line in generate's output: ${text.slice(-300)}`);
    return Number(m[2]) / Number(m[1]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

interface TorchResult { engine: string; precision: string; secondsPerStep: Record<string, number>; thesisRecipeSeconds: number; twentyStepSeconds: number }
function pytorch(precision: string): TorchResult {
  const text = run(python, [join(root, 'bench/pair_pytorch.py'), '--config', values.config!, '--threads', values.threads!, '--precision', precision]);
  return JSON.parse(text.trim().split('\n').filter((l) => l.startsWith('{')).pop()!) as TorchResult;
}

const rows: string[] = [];
const brain: Record<string, number> = {};
const brainRuns: Array<[string, string]> = [['native', 'fp32'], ['native', 'bf16'], ...(values.wasm ? [['wasm-simd-threads', 'fp32'] as [string, string]] : [])];
for (const [backend, precision] of brainRuns) {
  const label = `brain-ldm ${backend} ${precision}`;
  try {
    const seconds = brainLdmSecondsPerPair(precision, backend);
    if (backend === 'native') brain[precision] = seconds;
    rows.push(`| ${label}, DPM-Solver++ 20 steps + CFG, files written | ${seconds.toFixed(2)} | measured (${values.count} pairs) |`);
  } catch (e) {
    rows.push(`| ${label} | failed: ${(e as Error).message.split('\n')[0].slice(0, 120)} | |`);
  }
}
const torchRuns: TorchResult[] = [];
for (const precision of ['fp32', 'bf16']) {
  const t = pytorch(precision);
  torchRuns.push(t);
  rows.push(`| ${t.engine} ${precision}, thesis recipe: DDPM 1000 steps per stage + CFG | ${t.thesisRecipeSeconds.toFixed(1)} | projected: 1000 x per-step + decoders |`);
  rows.push(`| ${t.engine} ${precision}, 20 steps per stage + CFG (networks only) | ${t.twentyStepSeconds.toFixed(2)} | projected: 20 x per-step + decoders |`);
}
const lines = [
  `machine: ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores; node ${process.version}; ${new Date().toISOString().slice(0, 10)}`,
  `command: npm run bench:pair -- ${process.argv.slice(2).join(' ')}`.trimEnd(),
  `generator: ${values.generator}; networks for PyTorch: ${values.config}; threads ${values.threads}`,
  '',
  '| engine and recipe | seconds per labeled pair | how |',
  '|---|---|---|',
  ...rows,
  '',
  'PyTorch per-step seconds (median of 5 after a warm-up): ' + torchRuns.map((t) => `${t.precision}: ` +
    Object.entries(t.secondsPerStep).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')).join('; '),
];
if (brain.fp32) {
  const thesis = torchRuns[0].thesisRecipeSeconds;
  lines.push(`Thesis recipe in PyTorch fp32 / brain-ldm fp32: ${(thesis / brain.fp32).toFixed(0)}x` +
    (brain.bf16 ? `; / brain-ldm bf16: ${(thesis / brain.bf16).toFixed(0)}x` : ''));
}
const text = lines.join('\n');
console.log(text);
if (values.markdown) writeFileSync(values.markdown, `${text}\n`);
