/**
 * Parity with MONAI: every fixture made by train/make_parity_fixtures.py (real
 * monai-generative 0.2.3 / monai 1.6.1 networks with seeded random weights) is
 * imported from its .pth through the user's path (brain-ldm import ->
 * bundle), loaded on every backend, and each entry's outputs must match
 * MONAI's to relative L2 <= 1e-4 (fp32).
 *
 * The fixtures are generated, not committed: `bash train/setup_venv.sh &&
 * .venv/bin/python train/make_parity_fixtures.py`. BRAIN_LDM_REQUIRE_PARITY=1
 * (set by .ci/run) makes their absence a failure.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importCheckpoint } from '../ts/bundle/import-checkpoint.js';
import { readSafetensors } from '../ts/io/safetensors.js';
import { readBundle } from '../ts/bundle/model-bundle.js';
import { networkSpecText } from '../ts/nets/network-spec.js';
import { loadNetwork, validateNetworkWeights, type NetworkTensors } from '../ts/nets/network.js';
import { testBackends } from './helpers/backends.js';
import { relL2 } from './helpers/reference.js';

const dir = process.env.BRAIN_LDM_PARITY_DIR ?? fileURLToPath(new URL('./fixtures/parity/', import.meta.url));
const index = join(dir, 'index.json');

interface Case {
  name: string;
  network: string;
  args: Record<string, unknown>;
  wrapper: { num_embeddings: number; embedding_dim: number } | null;
  entries: Record<string, { inputs: string[]; outputs: string[] }>;
}

if (!existsSync(index)) {
  if (process.env.BRAIN_LDM_REQUIRE_PARITY) test('parity fixtures exist', (t) => t.fail(`${index} is missing: run train/make_parity_fixtures.py`));
  else test.skip('parity fixtures not generated (train/make_parity_fixtures.py)', () => {});
} else {
  const names: string[] = JSON.parse(readFileSync(index, 'utf8')).cases;
  const work = mkdtempSync(join(tmpdir(), 'brain-ldm-parity-'));
  test.after.always(() => rmSync(work, { recursive: true, force: true }));
  const bundles = new Map<string, Promise<string>>();

  // Import each checkpoint once, validated against the graph exactly as `brain-ldm import` does.
  const bundleFor = (c: Case): Promise<string> => {
    if (!bundles.has(c.name)) {
      const out = join(work, c.name);
      bundles.set(c.name, importCheckpoint({
        file: join(dir, c.name, 'model.pth'), network: c.network, args: c.args, out,
        wrapper: c.wrapper ? { num_embeddings: c.wrapper.num_embeddings, embedding_dim: c.wrapper.embedding_dim } : undefined,
        validate: validateNetworkWeights,
      }).then(() => out));
    }
    return bundles.get(c.name)!;
  };

  for (const name of names) {
    const c: Case = { name, ...JSON.parse(readFileSync(join(dir, name, 'case.json'), 'utf8')) };
    // The layout the core reports (used for random-weight bundles and export checks) is MONAI's state_dict: every
    // key MONAI saved, with its shape, except GenerativeModels' never-applied proj_attn.
    const family = (n: string) => (n.startsWith('wasm') ? 'wasm' : 'native');
    for (const b of testBackends().filter((x, i, all) => all.findIndex((y) => family(y.name) === family(x.name)) === i)) {
      test(`weight layout ${name} [${b.label}]`, async (t) => {
        const { config, weights } = await readBundle(await bundleFor(c));
        const backend = await b.create();
        try {
          const listed = await backend.networkWeightShapes(networkSpecText(config.network));
          t.is(new Set(listed.map(([k]) => k)).size, listed.length, 'no key listed twice');
          for (const [key, shape] of listed) {
            const w = weights.get(key);
            t.truthy(w, `listed key ${key} is in MONAI's state_dict`);
            if (w) t.is(w.shape.reduce((a, d) => a * d, 1), shape.reduce((a, d) => a * d, 1), `${key}: [${w.shape}] vs [${shape}]`);
          }
          const listedKeys = new Set(listed.map(([k]) => k));
          const unlisted = [...weights.keys()].filter((k) => !listedKeys.has(k));
          t.deepEqual(unlisted.filter((k) => !/\.proj_attn\.(weight|bias)$/.test(k)), []);
        } finally {
          await backend.dispose();
        }
      });
    }
    for (const b of testBackends()) {
      test(`parity ${name} [${b.label}]`, async (t) => {
        const bundle = await bundleFor(c);
        const tensors = (await readSafetensors(join(dir, name, 'tensors.safetensors'))).tensors;
        const backend = await b.create();
        try {
          const { network } = await loadNetwork(backend, bundle);
          for (const [entry, io] of Object.entries(c.entries)) {
            const inputs: NetworkTensors = {};
            for (const input of io.inputs) {
              const host = tensors.get(`${entry}.${input}`)!;
              inputs[input] = { shape: host.shape, data: host.data as Float32Array };
            }
            const outputs = await network.run(entry, inputs);
            for (const output of io.outputs) {
              const expected = tensors.get(`${entry}.${output}`)!;
              const got = outputs[output];
              t.deepEqual([...got.shape], expected.shape, `${entry}.${output} shape`);
              const err = relL2(got.data, expected.data as Float32Array);
              t.true(err <= 1e-4, `${entry}.${output}: relative L2 error ${err.toExponential(3)}`);
            }
          }
          await network.dispose();
        } finally {
          await backend.dispose();
        }
      });
    }
  }
}
