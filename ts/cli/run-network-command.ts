/**
 * `brain-ldm run-network`: one network of a bundle on inputs from a
 * safetensors file, outputs to another, so anyone can compare a bundle with
 * their own PyTorch: same names as MONAI's forward arguments.
 */
import { parseArgs } from 'node:util';
import { readSafetensors, writeSafetensors, type HostTensor } from '../io/safetensors.js';
import { loadBackend } from '../backend/select.js';
import type { BackendRequest } from '../backend/types.js';
import { loadNetwork, type NetworkTensors } from '../nets/network.js';

export const RUN_NETWORK_USAGE = `usage: brain-ldm run-network <bundle-dir> --inputs <in.safetensors> --out <out.safetensors> [options]

Runs the bundle's network once (or --repeat times) on named inputs and writes its named outputs.
Inputs by name: x, timesteps, context, seg, class_labels (UNet "forward"); x (autoencoder "encode");
z and seg (autoencoder "decode"). Outputs: out (forward, decode); z_mu, z_sigma (encode).

options:
  --entry <name>       forward, encode or decode (default: forward for UNets; decode when z is given, else encode)
  --repeat <n>         run n times after one warm-up and print the median forward time
  --backend <name>     auto (default), native, wasm, wasm-simd-threads, wasm-simd, wasm-scalar
  --threads <n>        worker threads`;

class UsageError extends Error {}

/** Inputs as float32 (timesteps and labels often arrive as int64 or float64 from PyTorch). */
function toFloat32(name: string, t: HostTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.data instanceof BigInt64Array) return Float32Array.from(t.data, (v) => Number(v));
  if (t.data instanceof Float64Array || t.data instanceof Int32Array || t.data instanceof Uint8Array) return Float32Array.from(t.data);
  throw new TypeError(`run-network: input '${name}' has dtype ${t.dtype}; expected F32 (or F64/I64/I32/U8, converted)`);
}

export async function runNetworkCommand(argv: string[], print: (line: string) => void, printError = (l: string) => console.error(l)): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv, allowPositionals: true,
      options: { inputs: { type: 'string' }, out: { type: 'string' }, entry: { type: 'string' }, repeat: { type: 'string' },
        backend: { type: 'string' }, threads: { type: 'string' } },
    }));
    if (positionals.length !== 1) throw new UsageError('expected exactly one bundle directory');
    if (!values.inputs) throw new UsageError('missing --inputs <in.safetensors>');
    if (!values.out) throw new UsageError('missing --out <out.safetensors>');
    if (values.repeat !== undefined && !(Number.isInteger(Number(values.repeat)) && Number(values.repeat) >= 1))
      throw new UsageError(`--repeat must be a positive integer, got '${values.repeat}'`);
    if (values.threads !== undefined && !(Number.isInteger(Number(values.threads)) && Number(values.threads) >= 1))
      throw new UsageError(`--threads must be a positive integer, got '${values.threads}'`);
  } catch (e) {
    if (!(e instanceof UsageError) && !(e instanceof TypeError && /Unknown option|Unexpected argument/.test((e as Error).message))) throw e;
    printError(`brain-ldm run-network: ${(e as Error).message}\n\n${RUN_NETWORK_USAGE}`);
    return 2;
  }
  const file = await readSafetensors(values.inputs!);
  const inputs: NetworkTensors = {};
  for (const [name, t] of file.tensors) inputs[name] = { shape: t.shape, data: toFloat32(name, t) };

  const backend = await loadBackend({ backend: values.backend as BackendRequest | undefined, threads: values.threads ? Number(values.threads) : undefined });
  try {
    const { network, spec } = await loadNetwork(backend, positionals[0]);
    const isUnet = spec.class.endsWith('UNet');
    const entry = values.entry ?? (isUnet ? 'forward' : 'z' in inputs ? 'decode' : 'encode');
    const repeat = values.repeat ? Number(values.repeat) : 0;
    let outputs = await network.run(entry, inputs);
    const times: number[] = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = performance.now();
      outputs = await network.run(entry, inputs);
      times.push(performance.now() - t0);
    }
    const tensors = new Map<string, HostTensor>();
    for (const [name, t] of Object.entries(outputs)) tensors.set(name, { dtype: 'F32', shape: [...t.shape], data: t.data });
    await writeSafetensors(values.out!, tensors, { entry, bundle: positionals[0] });
    const info = backend.info();
    print(`${spec.class} ${entry} on ${info.backend} (${info.isa}, ${info.threads} threads): ${[...tensors].map(([n, t]) => `${n} [${t.shape.join(', ')}]`).join(', ')} -> ${values.out}`);
    if (times.length) {
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)];
      print(`median forward ${median.toFixed(1)} ms over ${times.length} runs; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
    }
    await network.dispose();
  } finally {
    await backend.dispose();
  }
  return 0;
}
