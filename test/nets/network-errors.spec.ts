/**
 * A checkpoint that does not match its network arguments fails while the
 * network is built, naming the key and both shapes, on every backend; bad
 * inputs to a built network name the input. Uses a generated parity fixture
 * (train/make_parity_fixtures.py) as the well-formed starting point.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTorchCheckpoint, extractStateDict } from '../../ts/io/torch-checkpoint.js';
import { convertKeys } from '../../ts/bundle/key-schemes.js';
import type { NetworkSpec } from '../../ts/bundle/model-bundle.js';
import type { HostTensor } from '../../ts/io/safetensors.js';
import { createNetwork } from '../../ts/nets/network.js';
import { main } from '../../ts/cli.js';
import { eachBackend } from '../helpers/backends.js';

const dir = process.env.BRAIN_LDM_PARITY_DIR ?? fileURLToPath(new URL('../fixtures/parity/', import.meta.url));
const caseDir = join(dir, 'unet_attention_block');

if (!existsSync(caseDir)) {
  if (process.env.BRAIN_LDM_REQUIRE_PARITY) test('parity fixture unet_attention_block exists', (t) => t.fail(`${caseDir} is missing`));
  else test.skip('parity fixtures not generated (train/make_parity_fixtures.py)', () => {});
} else {
  const c = JSON.parse(readFileSync(join(caseDir, 'case.json'), 'utf8'));
  const spec: NetworkSpec = { class: c.network, args: c.args, wrapper: null, attentionOutputProjection: false };
  const load = async (): Promise<Map<string, HostTensor>> => {
    const { stateDict } = extractStateDict(await readTorchCheckpoint(join(caseDir, 'model.pth')));
    return new Map(convertKeys(stateDict).weights);
  };
  const first = (w: Map<string, HostTensor>, suffix: string) => [...w.keys()].find((k) => k.endsWith(suffix))!;

  eachBackend('a missing key names the key and its expected shape', async (t, backend) => {
    const w = await load();
    const key = first(w, 'conv1.conv.weight');
    const shape = w.get(key)!.shape;
    w.delete(key);
    await t.throwsAsync(createNetwork(backend, spec, w), {
      instanceOf: RangeError,
      message: `weights: missing key '${key}' (expected shape [${shape.join(', ')}])`,
    });
  });

  eachBackend('an extra key is named, so a checkpoint of another architecture is refused', async (t, backend) => {
    const w = await load();
    w.set('down_blocks.9.resnets.0.conv1.conv.weight', { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) });
    await t.throwsAsync(createNetwork(backend, spec, w), {
      instanceOf: RangeError,
      message: /1 unexpected key \('down_blocks\.9\.resnets\.0\.conv1\.conv\.weight' \[2, 2\]\)/,
    });
  });

  eachBackend('a shape mismatch names the key and both shapes', async (t, backend) => {
    const w = await load();
    const key = first(w, 'time_emb_proj.weight');
    const shape = w.get(key)!.shape;
    const wrong = [shape[0] + 1, shape[1]];
    w.set(key, { dtype: 'F32', shape: wrong, data: new Float32Array(wrong[0] * wrong[1]) });
    await t.throwsAsync(createNetwork(backend, spec, w), {
      instanceOf: RangeError,
      message: `weights: key '${key}' has shape [${wrong.join(', ')}], expected [${shape.join(', ')}]`,
    });
  });

  eachBackend('weights of an unsupported dtype are a TypeError naming the key', async (t, backend) => {
    const w = await load();
    const key = first(w, 'conv_in.conv.bias');
    w.set(key, { dtype: 'I64', shape: w.get(key)!.shape, data: new BigInt64Array(w.get(key)!.data.length) });
    await t.throwsAsync(createNetwork(backend, spec, w), { instanceOf: TypeError, message: new RegExp(`weight '${key.replace(/\./g, '\\.')}' has dtype`) });
  });

  eachBackend('bad inputs to a built network name the input and the expectation', async (t, backend) => {
    const network = await createNetwork(backend, spec, await load());
    const x = { shape: [1, c.args.in_channels, 8, 8, 8], data: new Float32Array(c.args.in_channels * 512).fill(0.5) };
    const timesteps = { shape: [1], data: new Float32Array([10]) };
    const labels = { shape: [1], data: new Float32Array([1]) };
    await t.throwsAsync(network.run('decode', { x }), { instanceOf: RangeError, message: /argument 'entry' is string decode, expected one of forward/ });
    await t.throwsAsync(network.run('forward', { x, timesteps, class_labels: labels, y: x }), { instanceOf: RangeError, message: /input 'y' is unknown/ });
    await t.throwsAsync(network.run('forward', { x, class_labels: labels }), { instanceOf: RangeError, message: /input 'timesteps' is required/ });
    await t.throwsAsync(network.run('forward', { x: { shape: [1, 99, 8, 8, 8], data: new Float32Array(99 * 512) }, timesteps, class_labels: labels }),
      { instanceOf: RangeError, message: /input 'x' has 99 channels, expected in_channels/ });
    await t.throwsAsync(network.run('forward', { x: { shape: [1, 1, 2], data: new Float32Array(3) }, timesteps, class_labels: labels }),
      { instanceOf: RangeError, message: /input 'x' has 3 values for shape \[1, 1, 2\] \(2\)/ });
    await t.throwsAsync(network.run('forward', { x, timesteps, class_labels: { shape: [1], data: new Float32Array([99]) } }),
      { instanceOf: RangeError, message: /class_labels' holds 99/ });
    // Still usable after every rejection.
    const out = await network.run('forward', { x, timesteps, class_labels: labels });
    t.deepEqual([...out.out.shape], [1, c.args.out_channels, 8, 8, 8]);
    t.true(out.out.data.every(Number.isFinite));
    // Repeated runs of one shape allocate no new activation buffers.
    const before = network.stats();
    await network.run('forward', { x, timesteps, class_labels: labels });
    t.deepEqual(network.stats(), before);
    await network.dispose();
    await t.throwsAsync(network.run('forward', { x, timesteps, class_labels: labels }), { instanceOf: TypeError, message: /disposed/ });
  });

  test('brain-ldm import with arguments that do not match the checkpoint fails naming key and shapes, writing nothing', async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'brain-ldm-import-'));
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const args = { ...c.args, num_channels: c.args.num_channels.map((n: number) => n * 2) };
    const errors: string[] = [];
    const error = console.error;
    console.error = (m: string) => errors.push(m);
    try {
      const code = await main(['import', join(caseDir, 'model.pth'), '--network', c.network, '--args', JSON.stringify(args), '--out', join(out, 'bundle')], () => {});
      t.is(code, 1);
    } finally {
      console.error = error;
    }
    t.regex(errors.join('\n'), /weights: key '[^']+' has shape \[[\d, ]+\], expected \[[\d, ]+\]/);
    t.false(existsSync(join(out, 'bundle')));
  });
}
