/**
 * `brain-ldm calibrate` on the tiny random generator: it must write a valid monotone map into generator.json (the
 * random model's volume barely moves, so the map is steep, which is what bounded extrapolation is for), leave the
 * file alone with --dry-run, report the check run, and make later `generate` requests use the map.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBackend } from '../../ts/backend/select.js';
import { readGeneratorConfig } from '../../ts/bundle/generator-bundle.js';
import { captureCli as cli } from '../helpers/capture-cli.js';
import { writeTinyGenerator } from '../helpers/tiny-generator.js';

const work = mkdtempSync(join(tmpdir(), 'brain-ldm-calibrate-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));


test.serial('calibrate stores a monotone map, reports the check, and generate then uses the map', async (t) => {
  const gen = join(work, 'generator');
  const backend = await loadBackend({});
  await writeTinyGenerator(backend, gen);
  await backend.dispose();
  const args = ['calibrate', gen, '--requests', '6', '--samples', '2', '--quiet', '--backend', 'native'];

  const before = readFileSync(join(gen, 'generator.json'));
  const dry = await cli([...args, '--dry-run', '--json']);
  t.is(dry.code, 0, dry.err);
  t.deepEqual(readFileSync(join(gen, 'generator.json')), before, '--dry-run leaves generator.json as it was');
  const report = JSON.parse(dry.out);
  t.is(report.sweep.length, 12);
  t.is(report.verification.rows.length, 6);

  const r = await cli(args);
  t.is(r.code, 0, r.err);
  const config = await readGeneratorConfig(gen); // validates: points strictly increasing in mL and condition
  const cal = config.calibration!;
  t.truthy(cal);
  t.deepEqual(cal.points, report.calibration.points, 'same seed, same map');
  t.is(cal.solver, 'dpm-solver++');
  t.is(cal.steps, 4);
  t.is(cal.samplesPerRequest, 2);
  t.is(typeof (cal.verification as { medianRelativeError: number }).medianRelativeError, 'number');
  t.regex(r.out, /Spearman -?\d\.\d{3}, median relative error \d+\.\d%, mean absolute error \d+\.\d mL/);

  const out = join(work, 'after');
  const g = await cli(['generate', gen, '--out', out, '--ventricle-volume', '23', '--quiet', '--json', '--backend', 'native']);
  t.is(g.code, 0, g.err);
  t.is(JSON.parse(g.out.split('\n')[0]).requested.conditionSource, 'calibration');
});

test.serial('calibrate rejects bad options with exit code 2', async (t) => {
  for (const args of [['--requests', '1'], ['--samples', '0'], ['--solver', 'euler'], ['--frobnicate']]) {
    const r = await cli(['calibrate', join(work, 'generator'), ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.err, /^brain-ldm calibrate: /);
  }
});
