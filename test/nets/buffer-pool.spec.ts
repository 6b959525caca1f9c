/**
 * The activation buffers of a network: the first run allocates, later runs of the same shapes allocate nothing
 * (a denoising step never calls malloc), and a SPADE decoder holds few full-resolution maps at once. The decoder
 * here has the thesis' proportions (SPADE hidden width twice the top level's channels), where every map at the
 * output resolution dominates memory: at 96x128x96 each one is 300-600 MB.
 */
import test from 'ava';
import { loadNativeAddon } from '../../ts/backend/native-binding.js';
import { createNetwork } from '../../ts/nets/network.js';
import { randomNetworkWeights } from '../../ts/nets/random-weights.js';
import type { NetworkTensors } from '../../ts/backend/types.js';
import type { NetworkSpec } from '../../ts/bundle/model-bundle.js';
import { eachBackend, withNativeBackend } from '../helpers/backends.js';

const SIDE = 32;
const HIDDEN = 32;
const SPADE_AE: NetworkSpec = {
  class: 'SPADEAutoencoderKL',
  args: { spatial_dims: 3, label_nc: 33, in_channels: 1, out_channels: 1, latent_channels: 2, num_channels: [16, 32], num_res_blocks: 1,
    norm_num_groups: 8, attention_levels: [false, false], with_encoder_nonlocal_attn: false, with_decoder_nonlocal_attn: false,
    spade_intermediate_channels: HIDDEN },
  wrapper: null,
  attentionOutputProjection: false,
};

function decodeInputs(): NetworkTensors {
  const z = new Float32Array(2 * (SIDE / 2) ** 3).map((_, i) => Math.sin(i * 0.37));
  const seg = new Float32Array(33 * SIDE ** 3);
  for (let v = 0; v < SIDE ** 3; v++) seg[((v * 7) % 33) * SIDE ** 3 + v] = 1;
  return { z: { shape: [1, 2, SIDE / 2, SIDE / 2, SIDE / 2], data: z }, seg: { shape: [1, 33, SIDE, SIDE, SIDE], data: seg } };
}

eachBackend('a SPADE decoder allocates on its first run only and holds at most 5 full-resolution maps', async (t, backend) => {
  const weights = await randomNetworkWeights(backend, SPADE_AE, 3);
  const network = await createNetwork(backend, SPADE_AE, weights);
  try {
    const inputs = decodeInputs();
    const first = await network.run('decode', inputs);
    const afterFirst = network.stats();
    const second = await network.run('decode', inputs);
    await network.run('decode', inputs);
    const afterThird = network.stats();
    t.is(afterThird.bufferAllocations, afterFirst.bufferAllocations, 'runs 2 and 3 reuse the first run\'s buffers');
    t.is(afterThird.bufferBytes, afterFirst.bufferBytes);
    t.deepEqual(second.out.data, first.out.data, 'reused buffers give the same bytes');
    // The widest full-resolution map (SPADE hidden, 32 channels). Live at the peak: the block input, its
    // normalised copy, the SPADE hidden map and gamma (beta reuses gamma's buffer), plus lower-resolution maps:
    // 4.67 measured. Before the SPADE norm released gamma before beta, skipped the label-map copy at full size and
    // the pool let a map reuse a free block up to twice its size, this decoder held 9.07.
    const widest = HIDDEN * SIDE ** 3 * 4;
    t.true(afterFirst.bufferBytes <= 5 * widest,
      `buffers held ${(afterFirst.bufferBytes / widest).toFixed(2)} full-resolution maps (${afterFirst.bufferBytes} bytes)`);
  } finally {
    await network.dispose();
  }
});

// Above a size (256 MB; BRAIN_LDM_SPADE_SLICE_ABOVE, read when a network is built, lowers it) a SPADE norm makes
// gamma and beta 32+ channels at a time. Each output channel is the same sum either way: identical bytes, fewer
// buffer bytes held. Native only (which precision takes which kernels is the point). fp32 wide layers run Winograd, and
// slices below its 64 channels would not: a 64-channel norm is not sliced (128 channels and more are, by 64:
// decoder-slabs.spec.ts). The decoder here has the thesis decoder's proportions scaled down by 2 (its full-resolution stage
// takes 64 channels to 32 with a 64-wide SPADE hidden layer; the thesis' 128 -> 64, hidden 128).
const WIDE: NetworkSpec = { ...SPADE_AE, args: { ...SPADE_AE.args, num_channels: [32, 64], norm_num_groups: 16, spade_intermediate_channels: 64 } };

// Which convolutions run direct: with AMX every bf16 one; fp32 and AVX512-BF16 take Winograd for 64 -> 64.
function amx(): boolean {
  try {
    return loadNativeAddon().addon.bf16Kernels === 'amx-bf16';
  } catch {
    return false;
  }
}

for (const precision of ['fp32', 'bf16'] as const) {
  const direct = precision === 'bf16' && amx();
  const title = direct ? 'give the same bytes and hold less' : 'are not sliced where the convolution runs Winograd';
  test(`SPADE gamma and beta made a slice of channels at a time ${title} (native ${precision})`, async (t) => {
    await withNativeBackend(t, { threads: 2, precision }, async (backend) => {
      const weights = await randomNetworkWeights(backend, WIDE, 5);
      const run = async (sliceAbove: string | undefined) => {
        if (sliceAbove === undefined) delete process.env.BRAIN_LDM_SPADE_SLICE_ABOVE;
        else process.env.BRAIN_LDM_SPADE_SLICE_ABOVE = sliceAbove;
        const network = await createNetwork(backend, WIDE, weights);
        delete process.env.BRAIN_LDM_SPADE_SLICE_ABOVE;
        try {
          const out = await network.run('decode', decodeInputs());
          return { out: out.out.data, bytes: network.stats().bufferBytes };
        } finally {
          await network.dispose();
        }
      };
      const whole = await run(undefined);
      // Only the full-resolution 64-channel norms, where the maps are largest.
      const sliced = await run(String(64 * SIDE ** 3 * 4 - 1));
      t.deepEqual(sliced.out, whole.out);
      if (direct) t.true(sliced.bytes < whole.bytes, `buffers held: sliced ${sliced.bytes}, whole ${whole.bytes}`);
      else t.is(sliced.bytes, whole.bytes);
    });
  });
}
