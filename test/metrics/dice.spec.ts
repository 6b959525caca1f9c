import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBackend } from '../../ts/backend/select.js';
import { writeVolume } from '../../ts/labels/label-volume.js';
import { diceByLabel, groupDice, meanDefined } from '../../ts/metrics/dice.js';
import { generateDataset } from '../../ts/pipeline/generate-dataset.js';
import { captureCli } from '../helpers/capture-cli.js';
import { writeTinyGenerator } from '../helpers/tiny-generator.js';

test('Dice per label and of a label group, by hand', (t) => {
  const ref = Uint8Array.from([0, 4, 4, 4, 43, 2, 2, 0]);
  const pred = Uint8Array.from([0, 4, 4, 0, 4, 2, 3, 0]);
  const d = diceByLabel(ref, pred, [0, 2, 3, 4, 43, 17]);
  t.is(d.get(0), (2 * 2) / (2 + 3)); // ref 0 at 0,7; pred 0 at 0,3,7
  t.is(d.get(2), (2 * 1) / (2 + 1));
  t.is(d.get(3), 0);
  t.is(d.get(4), (2 * 2) / (3 + 3));
  t.is(d.get(43), 0);
  t.true(Number.isNaN(d.get(17)!), 'absent from both: undefined, as nnU-Net reports it');
  t.is(groupDice(ref, pred, [4, 43]), (2 * 3) / (4 + 3));
  t.is(meanDefined([1, Number.NaN, 0.5]), 0.75);
  for (const v of diceByLabel(ref, ref, [0, 2, 4, 43]).values()) t.is(v, 1);
});

test.serial('autoencoder-dice reports a generator mask autoencoder on maps of its grid', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'brain-ldm-dice-'));
  try {
    const backend = await loadBackend({});
    await writeTinyGenerator(backend, join(work, 'gen'));
    for await (const _ of generateDataset({ generator: join(work, 'gen'), out: join(work, 'out'), count: 2, seed: 4, volume: { kind: 'ml', ml: 30 }, backend })) { /* written */ }
    await backend.dispose();
    const maps = [0, 1].map((i) => join(work, 'out', `sample_00000${i}_labels.nii.gz`));
    const r = await captureCli(['autoencoder-dice', ...maps, '--generator', join(work, 'gen'), '--json']);
    t.is(r.code, 0, r.err);
    const report = JSON.parse(r.out);
    t.is(report.rows.length, 2);
    for (const row of report.rows) {
      t.true(row.meanDice >= 0 && row.meanDice <= 1);
      t.true(row.ventricleDice >= 0 && row.ventricleDice <= 1);
      t.is(Object.keys(row.diceByLabel).length, 33);
    }
    const wrong = join(work, 'wrong.nii.gz');
    await writeVolume(wrong, { data: new Uint8Array(8 * 8 * 8), shape: [8, 8, 8], affine: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] });
    const bad = await captureCli(['autoencoder-dice', wrong, '--generator', join(work, 'gen')]);
    t.is(bad.code, 1);
    t.regex(bad.err, /wrong\.nii\.gz: shape \[8, 8, 8\] is not the generator's grid \[16, 16, 16\]/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
