/**
 * `brain-ldm import` then `brain-ldm run-network` on a generated parity fixture:
 * the output file holds MONAI's numbers, --repeat prints the median time.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, writeSafetensors, type HostTensor } from '../../ts/io/safetensors.js';
import { captureCli as cli } from '../helpers/capture-cli.js';
import { relL2 } from '../helpers/reference.js';

const dir = process.env.BRAIN_LDM_PARITY_DIR ?? fileURLToPath(new URL('../fixtures/parity/', import.meta.url));

for (const name of ['mask_unet_thesis', 'mask_ae_thesis']) {
  const caseDir = join(dir, name);
  if (!existsSync(caseDir)) {
    if (process.env.BRAIN_LDM_REQUIRE_PARITY) test(`parity fixture ${name} exists`, (t) => t.fail(`${caseDir} is missing`));
    else test.skip(`parity fixtures not generated (${name})`, () => {});
    continue;
  }
  // captureCli swaps console.error while main() runs, so the CLI tests run one at a time.
  test.serial(`import + run-network reproduce MONAI for ${name}, with --repeat timing`, async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'brain-ldm-run-network-'));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const c = JSON.parse(readFileSync(join(caseDir, 'case.json'), 'utf8'));
    const args = ['import', join(caseDir, 'model.pth'), '--network', c.network, '--args', JSON.stringify(c.args), '--out', join(work, 'bundle')];
    if (c.wrapper) args.push('--wrapper-embedding', `${c.wrapper.num_embeddings}x${c.wrapper.embedding_dim}`);
    const imported = await cli(args);
    t.is(imported.code, 0, imported.err);
    const tensors = (await readSafetensors(join(caseDir, 'tensors.safetensors'))).tensors;
    const entry = c.network.endsWith('UNet') ? 'forward' : 'decode';
    const inputs = new Map<string, HostTensor>();
    for (const input of c.entries[entry].inputs) inputs.set(input, tensors.get(`${entry}.${input}`)!);
    await writeSafetensors(join(work, 'in.safetensors'), inputs);
    const run = await cli(['run-network', join(work, 'bundle'), '--inputs', join(work, 'in.safetensors'), '--out', join(work, 'out.safetensors'), '--repeat', '2', '--threads', '2']);
    t.is(run.code, 0, run.err);
    t.regex(run.out, new RegExp(`^${c.network} ${entry} on (native|wasm-[a-z-]+) \\(`, 'm'));
    t.regex(run.out, /^median forward \d+(\.\d)? ms over 2 runs; peak RSS \d+ MiB$/m);
    const out = (await readSafetensors(join(work, 'out.safetensors'))).tensors.get('out')!;
    const expected = tensors.get(`${entry}.out`)!;
    t.deepEqual(out.shape, expected.shape);
    t.true(relL2(out.data as Float32Array, expected.data as Float32Array) <= 1e-4);
  });
}

test.serial('run-network usage errors exit 2 and name the problem', async (t) => {
  t.regex((await cli(['run-network'])).err, /expected exactly one bundle directory/);
  t.is((await cli(['run-network', 'x', '--out', 'y'])).code, 2);
  t.regex((await cli(['run-network', 'x', '--inputs', 'a', '--out', 'b', '--repeat', '0'])).err, /--repeat must be a positive integer/);
  const missing = await cli(['run-network', '/nonexistent/bundle', '--inputs', '/nonexistent/in.safetensors', '--out', '/tmp/x.safetensors']);
  t.is(missing.code, 1);
  t.regex(missing.err, /nonexistent/);
});
