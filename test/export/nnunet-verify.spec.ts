/**
 * Optional check with the real nnU-Net: nnunetv2's own verify_dataset_integrity on small datasets we write.
 * nnunetv2 is not in the project venv (its dependencies pull a CUDA torch build and ~90 packages), so this runs with
 * the Python named by BRAIN_LDM_NNUNET_PYTHON (else .venv/bin/python) when it can import nnunetv2; otherwise it
 * skips with the reason, or fails when BRAIN_LDM_REQUIRE_NNUNET=1.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NnunetDatasetWriter, type NnunetTask } from '../../ts/export/nnunet-dataset.js';
import type { Volume } from '../../ts/labels/label-volume.js';
import { SYNTHSEG_LABELS } from '../../ts/labels/synthseg-labels.js';
import { seededRandom } from '../../ts/random/seeded-random.js';
import { VENV_PYTHON } from '../helpers/python-reference.js';

const run = promisify(execFile);
const python = process.env.BRAIN_LDM_NNUNET_PYTHON || VENV_PYTHON;
const required = process.env.BRAIN_LDM_REQUIRE_NNUNET === '1';

async function nnunetAvailable(): Promise<string | null> {
  try {
    await run(python, ['-c', 'import nnunetv2.experiment_planning.verify_dataset_integrity'], { env: { ...process.env, OMP_NUM_THREADS: '1' } });
    return null;
  } catch (e) {
    const lines = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n');
    return `${python} cannot import nnunetv2 (${lines[lines.length - 1]}); set BRAIN_LDM_NNUNET_PYTHON to a Python with nnunetv2 installed`;
  }
}

const VERIFY = `
import sys
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
if __name__ == '__main__':
    verify_dataset_integrity(sys.argv[1], 1)
`;

async function verify(folder: string, scriptDir: string): Promise<{ ok: boolean; output: string }> {
  const script = join(scriptDir, 'verify.py');
  await writeFile(script, VERIFY);
  try {
    const { stdout, stderr } = await run(python, [script, folder], { env: { ...process.env, OMP_NUM_THREADS: '1', nnUNet_raw: scriptDir }, maxBuffer: 16 << 20 });
    return { ok: true, output: stdout + stderr };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string };
    return { ok: false, output: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}

function pair(index: number): { image: Volume<Float32Array>; labels: Volume<Uint8Array> } {
  const r = seededRandom(4, 'nnunet-verify', index);
  const shape: [number, number, number] = [14, 12, 10];
  const affine = [[0, 0, -1.667, 80], [0, -1.75, 0, 100], [-1.667, 0, 0, 60], [0, 0, 0, 1]];
  const n = shape[0] * shape[1] * shape[2];
  const labels = new Uint8Array(n).map((_, i) => SYNTHSEG_LABELS[i < SYNTHSEG_LABELS.length ? i : r.int(SYNTHSEG_LABELS.length)]);
  return { image: { data: new Float32Array(n).map(() => r.next()), shape, affine }, labels: { data: labels, shape, affine: affine.map((row) => row.slice()) } };
}

test('nnunetv2 verify_dataset_integrity accepts what NnunetDatasetWriter writes, and rejects a wrong numTraining', async (t) => {
  const missing = await nnunetAvailable();
  if (missing) {
    if (required) t.fail(`BRAIN_LDM_REQUIRE_NNUNET=1 but ${missing}`);
    else { t.log(`skipped: ${missing}`); t.pass(); }
    return;
  }
  const root = await mkdtemp(join(tmpdir(), 'brain-ldm-nnunet-verify-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  for (const [task, name] of [['synthseg', 'Dataset811_VerifySynthSeg'], ['ventricles', 'Dataset812_VerifyVentricles']] as Array<[NnunetTask, string]>) {
    const writer = await NnunetDatasetWriter.open(root, name, task, { onWarning: () => undefined });
    for (let i = 0; i < 3; i++) await writer.writeCase(`synth_${String(i).padStart(6, '0')}`, pair(i).image, pair(i).labels);
    await writer.finalize();
    const result = await verify(writer.folder, root);
    t.true(result.ok, `${task}: ${result.output}`);
    t.regex(result.output, /verify_dataset_integrity Done/, task);
    t.notRegex(result.output, /WARNING|Warning|Error/, `${task}: nnU-Net printed a warning or error:\n${result.output}`);
  }
  // The check is live: a dataset.json that overstates numTraining is refused.
  const folder = join(root, 'Dataset811_VerifySynthSeg');
  const json = JSON.parse(await readFile(join(folder, 'dataset.json'), 'utf8'));
  await writeFile(join(folder, 'dataset.json'), JSON.stringify({ ...json, numTraining: 4 }));
  const bad = await verify(folder, root);
  t.false(bad.ok);
  t.regex(bad.output, /Did not find the expected number of training cases \(4\)\. Found 3 instead/);
});
