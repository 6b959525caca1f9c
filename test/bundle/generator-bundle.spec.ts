import test from 'ava';
import { generatorGridAffine, validateGeneratorConfig } from '../../ts/bundle/generator-bundle.js';
import { affineAxcodes } from '../../ts/io/nifti.js';
import { tinyGeneratorConfig } from '../helpers/tiny-generator.js';

test('a valid generator.json round-trips unchanged', (t) => {
  const c = tinyGeneratorConfig();
  t.deepEqual(validateGeneratorConfig(JSON.parse(JSON.stringify(c))), c);
});

test('each invalid field is named with what was expected', (t) => {
  const cases: Array<[(c: Record<string, any>) => void, RegExp]> = [
    [(c) => { c.format = 'x'; }, /field 'format' must be "brain-ldm-generator"/],
    [(c) => { c.version = 2; }, /field 'version' must be 1/],
    [(c) => { c.extra = 1; }, /unknown field 'extra'/],
    [(c) => { c.grid.orientation = 'XYZ'; }, /field 'grid.orientation'/],
    [(c) => { c.grid.spacingMm = [1, -1, 1]; }, /field 'grid.spacingMm\[1\]' must be a positive number/],
    [(c) => { c.labels = [2, 0]; }, /field 'labels\[0\]' must be 0/],
    [(c) => { c.mask.latentShape = [3, 5, 16, 16]; }, /field 'mask.latentShape' must be spatial sizes dividing grid.shape/],
    [(c) => { c.mask.unet = '../elsewhere'; }, /field 'mask.unet' must be a relative path inside the generator directory/],
    [(c) => { c.conditioning.ratioMax = 0.001; }, /field 'conditioning.ratioMax'/],
    [(c) => { c.conditioning.ventricleLabels = [99]; }, /field 'conditioning.ventricleLabels'/],
    [(c) => { c.conditioning.nullContext = { convention: 'zero' }; }, /field 'conditioning.nullContext.convention'/],
    [(c) => { c.conditioning.nullContext = null; }, /field 'defaults.guidanceScale' must be 1 \(conditioning.nullContext is null/],
    [(c) => { c.defaults.solver = 'euler'; }, /field 'defaults.solver' must be one of ddpm, ddim, pndm, dpm-solver\+\+/],
    [(c) => { c.calibration = { points: [[10, 0.1], [5, 0.5]], guidanceScale: 3, solver: 'ddim', steps: 5, samplesPerRequest: 2, seed: 0, date: '2026-01-01T00:00:00Z', verification: null }; },
      /field 'calibration.points' must be strictly increasing in both mL and condition/],
  ];
  for (const [mutate, message] of cases) {
    const c = JSON.parse(JSON.stringify(tinyGeneratorConfig()));
    mutate(c);
    t.throws(() => validateGeneratorConfig(c, 'gen/generator.json'), { message: new RegExp(`^gen/generator.json: .*${message.source}`) });
  }
});

test('generated volumes sit on the grid: axis codes, spacing, centre at the origin', (t) => {
  const grid = { orientation: 'IPL', shape: [48, 64, 48] as [number, number, number], spacingMm: [3.334, 3.5, 3.334] as [number, number, number] };
  const a = generatorGridAffine(grid);
  t.is(affineAxcodes(a), 'IPL');
  const zooms = [0, 1, 2].map((j) => Math.hypot(a[0][j], a[1][j], a[2][j]));
  t.deepEqual(zooms, grid.spacingMm);
  const centre = [0, 1, 2].map((r) => a[r][3] + [0, 1, 2].reduce((s, j) => s + a[r][j] * (grid.shape[j] - 1) / 2, 0));
  for (const c of centre) t.true(Math.abs(c) < 1e-9);
});
