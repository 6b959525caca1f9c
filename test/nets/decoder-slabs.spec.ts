/**
 * A SPADE decoder at its full resolution, made to hold fewer maps at once without changing a bit of its output:
 * - its last upsample is convolved a slab of depth rows at a time, the upsampled map never made whole
 *   (above 256 MB; BRAIN_LDM_UPSAMPLE_SLAB_ABOVE and BRAIN_LDM_UPSAMPLE_SLAB_BYTES, read when a network is
 *   built, take that path on small maps with many slabs);
 * - SPADE gamma and beta over 128 channels, whose whole convolution runs Winograd, are made 64 channels (still
 *   Winograd) at a time (BRAIN_LDM_SPADE_SLICE_ABOVE).
 * The decoder has the thesis decoder's full-resolution stage (128 -> 64 channels, SPADE hidden width 128) on a
 * 32x32x32 volume, where every convolution picks the same algorithm whole or in pieces; so the outputs must be
 * the same bytes.
 */
import test from 'ava';
import { createNetwork } from '../../ts/nets/network.js';
import { randomNetworkWeights } from '../../ts/nets/random-weights.js';
import type { NetworkTensors } from '../../ts/backend/types.js';
import type { NetworkSpec } from '../../ts/bundle/model-bundle.js';
import { createBackend } from '../../ts/backend/select.js';
import type { Backend } from '../../ts/backend/types.js';
import { testBackends } from '../helpers/backends.js';

const THESIS_STAGE: NetworkSpec = {
  class: 'SPADEAutoencoderKL',
  args: { spatial_dims: 3, label_nc: 33, in_channels: 1, out_channels: 1, latent_channels: 2, num_channels: [64, 128], num_res_blocks: 1,
    norm_num_groups: 32, attention_levels: [false, false], with_encoder_nonlocal_attn: false, with_decoder_nonlocal_attn: false,
    spade_intermediate_channels: 128 },
  wrapper: null,
  attentionOutputProjection: false,
};

/** A latent of [depth, side, side] and a label map twice its size with every label present. */
function decodeInputs(depth: number, side: number): NetworkTensors {
  const latent = depth * side * side;
  const voxels = 8 * latent;
  const z = new Float32Array(2 * latent).map((_, i) => Math.sin(i * 0.37));
  const seg = new Float32Array(33 * voxels);
  for (let v = 0; v < voxels; v++) seg[((v * 7 + (v >> 9)) % 33) * voxels + v] = 1;
  return { z: { shape: [1, 2, depth, side, side], data: z }, seg: { shape: [1, 33, 2 * depth, 2 * side, 2 * side], data: seg } };
}

const ENV = ['BRAIN_LDM_UPSAMPLE_SLAB_ABOVE', 'BRAIN_LDM_UPSAMPLE_SLAB_BYTES', 'BRAIN_LDM_SPADE_SLICE_ABOVE'] as const;
type Env = Partial<Record<(typeof ENV)[number], string>>;

interface Engine {
  label: string;
  create(): Promise<Backend>;
}

// Native in both precisions and the wasm threads build, which reads the variables when its module loads
// (ts/backend/wasm-binding.ts hands them to the glue's environment), so they are set before the backend exists.
const wasm = testBackends().find((b) => b.name === 'wasm-simd-threads');
const ENGINES: Engine[] = [
  { label: 'native fp32', create: () => createBackend('native', { threads: 2, precision: 'fp32' }) },
  { label: 'native bf16', create: () => createBackend('native', { threads: 2, precision: 'bf16' }) },
  ...(wasm ? [{ label: 'wasm-simd-threads', create: () => wasm.create() }] : []),
];

async function decode(t: import('ava').ExecutionContext, engine: Engine, env: Env, inputs: NetworkTensors) {
  for (const name of ENV) {
    if (env[name] === undefined) delete process.env[name];
    else process.env[name] = env[name];
  }
  let backend: Backend;
  let network: Awaited<ReturnType<typeof createNetwork>>;
  try {
    try {
      backend = await engine.create();
    } catch (e) {
      t.log(`skipped: ${(e as Error).message}`);
      return undefined;
    }
    const weights = await randomNetworkWeights(backend, THESIS_STAGE, 11);
    network = await createNetwork(backend, THESIS_STAGE, weights);
  } finally {
    for (const name of ENV) delete process.env[name];
  }
  try {
    const out = await network.run('decode', inputs);
    return { out: out.out.data as Float32Array, bytes: network.stats().bufferBytes };
  } finally {
    await network.dispose();
    await backend.dispose();
  }
}

for (const engine of ENGINES) {
  test(`a decoder's last upsample convolved in slabs of 4 rows gives the same bytes and holds less (${engine.label})`, async (t) => {
    // Depth 32 -> eight slabs of 4 rows; depth 10 -> slabs of 4 and 6 rows (the last takes the rest).
    for (const depth of [16, 5]) {
      const inputs = decodeInputs(depth, 16);
      const whole = await decode(t, engine, {}, inputs);
      const slabs = await decode(t, engine, { BRAIN_LDM_UPSAMPLE_SLAB_ABOVE: '0', BRAIN_LDM_UPSAMPLE_SLAB_BYTES: '1' }, inputs);
      if (!whole || !slabs) return t.pass();
      t.is(slabs.out.length, 2 * depth * 32 * 32);
      t.true(slabs.out.every(Number.isFinite));
      t.deepEqual(slabs.out, whole.out, `upsampled depth ${2 * depth}`);
      // At 32x32x32 the upsampled map (16 MB) outweighs the two slab buffers (6 and 4 rows, 5 MB): the skip
      // that took its block at the next block's peak takes a block of its own size. At depth 10 the buffers
      // are about the map's size.
      if (depth === 16) t.true(slabs.bytes < whole.bytes, `buffers held: slabs ${slabs.bytes}, whole ${whole.bytes}`);
    }
  });
}

for (const engine of ENGINES) {
  test(`SPADE gamma and beta over 128 channels made 64 (Winograd) channels at a time give the same bytes and hold less (${engine.label})`, async (t) => {
    const inputs = decodeInputs(16, 16);
    const whole = await decode(t, engine, {}, inputs);
    // Only the full-resolution 128-channel norms.
    const sliced = await decode(t, engine, { BRAIN_LDM_SPADE_SLICE_ABOVE: String(128 * 32 ** 3 * 4 - 1) }, inputs);
    if (!whole || !sliced) return t.pass();
    t.deepEqual(sliced.out, whole.out);
    t.true(sliced.bytes < whole.bytes, `buffers held: sliced ${sliced.bytes}, whole ${whole.bytes}`);
  });
}
