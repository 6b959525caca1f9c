/**
 * setTimesteps(n) against MONAI's and diffusers' set_timesteps for n = 1..61 and assorted larger n up to 1000:
 * DDPM and DDIM (both semantics, with steps_offset), PNDM with and without PRK, DPM-Solver++ with every spacing
 * (including diffusers' trailing quirk: for some n, e.g. 61, numpy's float arange yields n + 1 steps ending at -1).
 */
import test from 'ava';
import { index, loadTensors } from './harness.js';
import { createScheduler } from '../../ts/schedulers/index.js';

test('timesteps of every scheduler variant match the reference for every n', async (t) => {
  const tt = await loadTensors('timesteps.safetensors');
  t.true(index.timesteps.length >= 15, `${index.timesteps.length} variants`);
  let checked = 0;
  for (const v of index.timesteps) {
    const flat = Array.from(tt.get(`${v.key}.timesteps`)!.data as Int16Array);
    const lengths = Array.from(tt.get(`${v.key}.lengths`)!.data as Int32Array);
    let at = 0;
    v.n.forEach((n, i) => {
      const want = flat.slice(at, at + lengths[i]);
      at += lengths[i];
      const s = createScheduler(v.config);
      s.setTimesteps(n);
      t.deepEqual(Array.from(s.timesteps), want, `${JSON.stringify(v.config)} n=${n}`);
      checked++;
    });
  }
  t.log(`${checked} (config, n) pairs`);
});

test('the quirks: generative DDIM-50 starts at 980, MONAI core DDIM-50 at 999; DDPM n=7 core rounds 832.5 half to even', (t) => {
  const g = createScheduler({ type: 'ddim', semantics: 'generative-0.2.3' });
  g.setTimesteps(50);
  t.is(g.timesteps[0], 980);
  t.is(g.timesteps[49], 0);
  const m = createScheduler({ type: 'ddim', semantics: 'monai-1.6' });
  m.setTimesteps(50);
  t.deepEqual(Array.from(m.timesteps.slice(0, 3)), [999, 979, 958]);
  const d = createScheduler({ type: 'ddpm', semantics: 'monai-1.6' });
  d.setTimesteps(7);
  t.deepEqual(Array.from(d.timesteps), [999, 832, 666, 500, 333, 166, 0]);
  const p = createScheduler({ type: 'pndm' });
  p.setTimesteps(10);
  t.is(p.timesteps.length, 19);
  t.is(p.numInferenceSteps, 19); // MONAI overwrites num_inference_steps with the PRK-extended length
  const dpm = createScheduler({ type: 'dpm-solver++', timestepSpacing: 'trailing' });
  dpm.setTimesteps(61);
  t.is(dpm.timesteps.length, 62);
  t.is(dpm.timesteps[61], -1);
});
