/**
 * Network layers keep their transformed or packed weights where the volume is small: Winograd's U
 * (ops/conv3d_winograd.cpp, kKeepUOutputs) and the fp32 packed weights of the flat and gathered direct paths
 * (ops/conv3d.cpp, kGatherPositions). The first run makes and stores them, later runs read them back. The later runs
 * must give the first run's bytes (a stale or half-filled cache, or one laid out for other kernels, would not), and
 * the output must still match the same network run on a batch large enough that nothing is kept.
 */
import test from 'ava';
import type { Backend } from '../../ts/backend/types.js';
import type { NetworkSpec } from '../../ts/bundle/model-bundle.js';
import { createNetwork } from '../../ts/nets/network.js';
import { randomNetworkWeights } from '../../ts/nets/random-weights.js';
import { eachBackend, testBackends, withNativeBackend } from '../helpers/backends.js';
import { relL2 } from '../helpers/reference.js';

// 64 and 96 channels, so every stride-1 3x3x3 convolution takes Winograd (8x8x8 output tiles at 16^3, 512 per item;
// 64 at 8^3); the stride-2 downsample is gathered and the 64 -> 96 skip is a flat 1x1x1 at 8^3.
const UNET: NetworkSpec = {
  class: 'DiffusionModelUNet',
  args: { spatial_dims: 3, in_channels: 2, out_channels: 2, num_res_blocks: 1, num_channels: [64, 96], attention_levels: [false, false],
    norm_num_groups: 16, resblock_updown: false, with_conditioning: false },
  wrapper: null,
  attentionOutputProjection: false,
};
const SIDE = 16;

function inputs(batch: number, side = SIDE) {
  const n = batch * 2 * side ** 3;
  const x = new Float32Array(n).map((_, i) => Math.sin(i * 0.013) + 0.3 * Math.cos((i % (2 * side ** 3)) * 0.7));
  return { x: { shape: [batch, 2, side, side, side], data: x }, timesteps: { shape: [batch], data: new Float32Array(batch).fill(500) } };
}

/**
 * Small volumes: at 8^3 the 96 -> 96 layers run at 4^3, 16 F(2,3) tiles with batch 2 and 8 per item, where a bf16
 * layer that keeps U takes Winograd's bf16 products (ops/conv3d_winograd.cpp, winograd_tile's keeps_weights: from 8
 * tiles), as wasm simd128 takes F(2,3) from 16 tiles. Batch 2 must give the same bytes again from its kept U, and its
 * first item the batch of 1's output to the precision's rounding. (On two native threads the batch of 2 runs as two
 * shares of one item, test/nets/batch-shares.spec.ts; on wasm simd, the batch of 1 takes the direct convolution.)
 */
async function checkSmallVolume(t: import('ava').ExecutionContext, backend: Backend) {
  const weights = await randomNetworkWeights(backend, UNET, 12);
  const network = await createNetwork(backend, UNET, weights);
  try {
    const two = inputs(2, 8);
    const first = (await network.run('forward', two)).out.data;
    t.deepEqual((await network.run('forward', two)).out.data, first, 'the kept U gives the bytes of the run that made it');
    const one = (await network.run('forward', inputs(1, 8))).out.data;
    const item0 = first.subarray(0, one.length);
    const tolerance = backend.info().precision === 'bf16' ? 2e-2 : 1e-5;
    t.true(relL2(item0, one) <= tolerance, `batch 2 item 0 vs batch of 1: rel L2 ${relL2(item0, one)}`);
  } finally {
    await network.dispose();
  }
}

async function check(t: import('ava').ExecutionContext, backend: Backend) {
  const weights = await randomNetworkWeights(backend, UNET, 11);
  const network = await createNetwork(backend, UNET, weights);
  try {
    const one = inputs(1);
    const first = (await network.run('forward', one)).out.data;
    const second = (await network.run('forward', one)).out.data;
    t.deepEqual(second, first, 'the kept weights give the bytes of the run that made them');
    // Batch 16 (on two native threads two shares of 8, test/nets/batch-shares.spec.ts): 32768 outputs per share per 16^3
    // layer (above kKeepUOutputs) and 4096 at 8^3 (above kGatherPositions), so the layers transform and pack their
    // weights per call; there the 64 -> 64 layers at 16^3 and the 96 -> 96 ones
    // at 8^3 take F(4,3) (ops/conv3d_winograd.cpp, winograd_tile), and the 96 -> 96 ones keep its U in place of
    // F(2,3)'s, which the batch of 1 after it must make again.
    // In a bf16 context those F(4,3) layers compute in fp32 (ops/conv3d.cpp) while the batch of 1 runs bf16 F(2,3)
    // products, so the two agree to bf16's rounding there, not to fp32's.
    const sixteen = inputs(16);
    const big = (await network.run('forward', sixteen)).out.data;
    const item0 = big.subarray(0, first.length);
    const tolerance = backend.info().precision === 'bf16' ? 2e-2 : 1e-5;
    t.true(relL2(item0, first) <= tolerance, `batch item 0 vs batch of 1: rel L2 ${relL2(item0, first)}`);
    t.deepEqual((await network.run('forward', one)).out.data, first, 'a small batch after a large one reads the kept weights again');
  } finally {
    await network.dispose();
  }
}

eachBackend('a network keeps transformed and packed weights across runs and gets the same bytes', async (t, backend) => {
  await check(t, backend);
});

for (const backend of testBackends().filter((b) => b.name === 'wasm-simd' || b.name === 'wasm-simd-threads')) {
  test(`${backend.label}: small volumes take Winograd and agree with the direct convolution`, async (t) => {
    const b = await backend.create();
    try {
      await checkSmallVolume(t, b);
    } finally {
      await b.dispose();
    }
  });
}

test('bf16 small volumes take Winograd products from kept weights too (native, AVX512-BF16 dot kernels)', async (t) => {
  await withNativeBackend(t, { threads: 2, precision: 'bf16' }, (backend) => checkSmallVolume(t, backend), { BRAIN_LDM_BF16_KERNELS: 'avx512-bf16' });
});

test('bf16 Winograd products keep their packed transformed weights too (native, AVX512-BF16 dot kernels)', async (t) => {
  await withNativeBackend(t, { threads: 2, precision: 'bf16' }, (backend) => check(t, backend), { BRAIN_LDM_BF16_KERNELS: 'avx512-bf16' });
});
