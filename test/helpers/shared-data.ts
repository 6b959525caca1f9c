/**
 * Gate for specs that read the real data in ../shared/data (beside the repository):
 * with the data absent they skip with one stated reason, or fail when
 * BRAIN_LDM_REQUIRE_DATA=1 (set by .ci/run, where the data is always there).
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DATA = new URL('../../../shared/data/', import.meta.url);

export function sharedData(spec: string, probe = 'synthseg-label-maps/training_seg_01.nii.gz'): {
  dataTest: typeof test;
  dataPath: (relative: string) => string;
  haveData: boolean;
} {
  const require = process.env.BRAIN_LDM_REQUIRE_DATA === '1';
  const haveData = existsSync(fileURLToPath(new URL(probe, DATA)));
  if (!haveData) {
    const msg = `shared data not found at ${fileURLToPath(DATA)}: ${spec} tests on the real data are ${require ? 'required (BRAIN_LDM_REQUIRE_DATA=1) and fail' : 'skipped (set BRAIN_LDM_REQUIRE_DATA=1 to fail instead)'}`;
    console.warn(`${spec}: ${msg}`);
    test(`${spec}: shared data folder is present`, (t) => {
      if (require) t.fail(msg);
      else { t.log(msg); t.pass(); }
    });
  }
  return {
    dataTest: haveData || require ? test : (test.skip as unknown as typeof test),
    dataPath: (relative: string) => fileURLToPath(new URL(relative, DATA)),
    haveData,
  };
}
