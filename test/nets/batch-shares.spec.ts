/**
 * A network run on several threads gives each group of threads its own share of the batch (Network::run in
 * native/core/nets/network.cpp): the inputs whose first dimension is the batch are sliced, the rest (a broadcast
 * timestep) passed whole, each share runs through the whole network on a one-thread context, and the outputs are put
 * back together. So an item of a batch of 2 on 2 threads must give, bit for bit, what that item alone gives on one
 * thread: a share that read another item's slice, a timestep or context taken from the wrong row, or outputs put back
 * in the wrong order would not. Where the batch does not divide (3 items on 2 threads) the run is whole, and
 * BRAIN_LDM_SPLIT_BATCH=0 turns the split off (wasm's default; =1 turns it on there); both must still agree with the
 * items run alone to rounding. Errors name the shapes the caller passed, not a share's.
 */
import test from 'ava';
import { createBackend } from '../../ts/backend/select.js';
import type { Backend, BackendName, NetworkTensors } from '../../ts/backend/types.js';
import type { NetworkSpec } from '../../ts/bundle/model-bundle.js';
import { createNetwork } from '../../ts/nets/network.js';
import { randomNetworkWeights } from '../../ts/nets/random-weights.js';
import { testBackends, withEnvVar } from '../helpers/backends.js';
import { firstDifference, relL2 } from '../helpers/reference.js';

// 64 channels, so the 3x3x3 convolutions take Winograd at 16^3 and 8^3; cross-attention at the lower level reads the
// context, a second batched input.
const UNET: NetworkSpec = {
  class: 'DiffusionModelUNet',
  args: { spatial_dims: 3, in_channels: 3, out_channels: 3, num_res_blocks: 1, num_channels: [64, 64], attention_levels: [false, true],
    num_head_channels: [0, 32], norm_num_groups: 16, resblock_updown: false, with_conditioning: true, cross_attention_dim: 4 },
  wrapper: null,
  attentionOutputProjection: false,
};
const SIDE = 16;
const ITEM = 3 * SIDE ** 3;
const TOKENS = 2;

// Item b of every batch is the same: its own x, timestep and context rows.
function item(b: number) {
  return {
    x: new Float32Array(ITEM).map((_, i) => Math.sin(i * 0.011 + b * 1.7) + 0.2 * Math.cos(i * 0.37)),
    t: 150 + 400 * b,
    context: new Float32Array(TOKENS * 4).map((_, i) => Math.cos(i * 0.9 + b)),
  };
}

function batch(items: number[], broadcastT = false): NetworkTensors {
  const x = new Float32Array(items.length * ITEM), context = new Float32Array(items.length * TOKENS * 4);
  items.forEach((b, k) => {
    const it = item(b);
    x.set(it.x, k * ITEM);
    context.set(it.context, k * TOKENS * 4);
  });
  const t = broadcastT ? new Float32Array([item(items[0]).t]) : new Float32Array(items.map((b) => item(b).t));
  return {
    x: { shape: [items.length, 3, SIDE, SIDE, SIDE], data: x },
    timesteps: { shape: [t.length], data: t },
    context: { shape: [items.length, TOKENS, 4], data: context },
  };
}

const withEnv = <T>(value: string | undefined, fn: () => Promise<T>) => withEnvVar('BRAIN_LDM_SPLIT_BATCH', value, fn);

/** Runs each input set on a fresh network of `backend` (weights from seed 21) and returns the outputs. */
async function outputs(backend: Backend, runs: NetworkTensors[]): Promise<Float32Array[]> {
  const network = await createNetwork(backend, UNET, await randomNetworkWeights(backend, UNET, 21));
  try {
    const out: Float32Array[] = [];
    for (const inputs of runs) out.push((await network.run('forward', inputs)).out.data as Float32Array);
    return out;
  } finally {
    await network.dispose();
  }
}

interface Engine { label: string; name: BackendName; options: { isa?: string; precision?: 'fp32' | 'bf16' } }
const ENGINES: Engine[] = [
  { label: 'native fp32', name: 'native', options: { precision: 'fp32' } },
  { label: 'native scalar', name: 'native', options: { isa: 'scalar' } },
  { label: 'native bf16', name: 'native', options: { precision: 'bf16' } },
  ...(testBackends().some((b) => b.name === 'wasm-simd-threads') ? [{ label: 'wasm-simd-threads', name: 'wasm-simd-threads' as const, options: {} }] : []),
];

async function make(t: import('ava').ExecutionContext, e: Engine, threads: number): Promise<Backend | null> {
  try {
    return await createBackend(e.name, { ...e.options, threads });
  } catch (err) {
    if (!testBackends().some((b) => b.name === e.name)) throw err;
    t.log(`skipped: ${(err as Error).message}`);  // bf16 on a CPU without AVX512-BF16
    return null;
  }
}

for (const e of ENGINES) {
  test(`${e.label}: each item of a batch split among 2 threads gives the bytes of that item run alone on 1 thread`, async (t) => {
    const one = await make(t, e, 1);
    if (!one) return t.pass();
    let alone: Float32Array[];
    try {
      alone = await outputs(one, [batch([0]), batch([1]), batch([2]), batch([1, 2]), batch([0, 1])]);
    } finally {
      await one.dispose();
    }
    // wasm runs batches whole unless BRAIN_LDM_SPLIT_BATCH=1 (its shares were slower); the split must still be exact.
    const two = (await withEnv(e.name === 'native' ? undefined : '1', () => make(t, e, 2)))!;
    let split: Float32Array[];
    const tolerance = two.info().precision === 'bf16' ? 2e-2 : 1e-5;
    try {
      t.true(two.info().splitBatch, e.name === 'native' ? 'on by default' : 'on when asked for');
      // Batch 2 per item; the broadcast timestep [1] with both items at item 0's; batch 4 (2 items per share) twice.
      split = await outputs(two, [batch([0, 1]), batch([0, 0], true), batch([1, 2, 0, 1]), batch([1, 2, 0, 1]), batch([0, 1, 2])]);
    } finally {
      await two.dispose();
    }
    const at = (out: Float32Array, k: number) => out.subarray(k * ITEM, (k + 1) * ITEM);
    t.true(alone.every((a) => a.every(Number.isFinite)));
    t.is(alone[3].length, 2 * ITEM);
    t.true(firstDifference(alone[0], alone[1]) !== -1, 'the items differ');
    t.is(firstDifference(at(split[0], 0), alone[0]), -1, 'batch 2, item 0');
    t.is(firstDifference(at(split[0], 1), alone[1]), -1, 'batch 2, item 1');
    t.is(firstDifference(at(split[1], 0), alone[0]), -1, 'broadcast timestep, item 0');
    t.is(firstDifference(at(split[1], 1), alone[0]), -1, 'broadcast timestep, item 1 (item 0 again)');
    // Batch 4: two shares of 2 items, each the bytes of those 2 items run as a batch on one thread.
    t.is(firstDifference(split[2].subarray(0, 2 * ITEM), alone[3]), -1, 'batch 4, share 0');
    t.is(firstDifference(split[2].subarray(2 * ITEM), alone[4]), -1, 'batch 4, share 1');
    t.is(firstDifference(split[3], split[2]), -1, 'the same batch again: the same bytes');
    // 3 items on 2 threads: no split, the whole batch on both threads; its rounding may differ.
    [0, 1, 2].forEach((b, k) => t.true(relL2(at(split[4], k), alone[b]) <= tolerance, `batch 3, item ${k}: ${relL2(at(split[4], k), alone[b])}`));
  });
}

test('BRAIN_LDM_SPLIT_BATCH=0 runs the batch whole, within rounding of the split run, and other values are refused', async (t) => {
  const inputs = batch([0, 1]);
  const on = await createBackend('native', { threads: 2 });
  const [split] = await outputs(on, [inputs]).finally(() => on.dispose());
  const off = await withEnv('0', () => createBackend('native', { threads: 2 }));
  try {
    t.false(off.info().splitBatch);
    const [whole] = await outputs(off, [inputs]);
    t.true(relL2(whole, split) <= 1e-5, `rel L2 ${relL2(whole, split)}`);
  } finally {
    await off.dispose();
  }
  const wasm = testBackends().some((b) => b.name === 'wasm-simd-threads');
  if (wasm) {
    const w = await withEnv(undefined, () => createBackend('wasm-simd-threads', { threads: 2 }));
    t.false(w.info().splitBatch, 'wasm: off by default');
    await w.dispose();
  }
  for (const name of testBackends().filter((b) => b.name === 'native' || b.name === 'wasm-simd-threads').map((b) => b.name))
    for (const bad of ['yes', '2', 'on']) {
      const err = await withEnv(bad, () => t.throwsAsync(() => createBackend(name, { threads: 2 })));
      t.regex(err?.message ?? '', new RegExp(`BRAIN_LDM_SPLIT_BATCH must be 0 or 1, got '${bad}'`), name);
    }
});

test('a split batch reuses its buffers, and its errors name the shapes the caller passed', async (t) => {
  const backend = await createBackend('native', { threads: 2 });
  const network = await createNetwork(backend, UNET, await randomNetworkWeights(backend, UNET, 21));
  try {
    const inputs = batch([0, 1]);
    await network.run('forward', inputs);
    const first = network.stats();
    await network.run('forward', inputs);
    await network.run('forward', inputs);
    t.is(network.stats().bufferAllocations, first.bufferAllocations, 'runs 2 and 3 allocate nothing');
    t.true(first.bufferAllocations > 0);
    const bad = { ...inputs, context: { shape: [2, TOKENS, 5], data: new Float32Array(2 * TOKENS * 5) } };
    await t.throwsAsync(network.run('forward', bad), { message: /input 'context' has shape \[2, 2, 5\], expected \[2, tokens, 4\]/ });
  } finally {
    await network.dispose();
    await backend.dispose();
  }
});
