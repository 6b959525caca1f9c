#!/usr/bin/env node
// Runs the ava suite with TAP output, passes it through, and ends with the
// line CI reads: "N passed, N failed" (ava's own summary is not read by CI).
// Extra arguments go to ava (e.g. a spec file).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// ava's package exports do not expose its CLI file; its bin path is stable.
const avaCli = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url));
const child = spawn(process.execPath, [avaCli, '--tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });

let passed = 0;
let failed = 0;
let skipped = 0;
const lines = createInterface({ input: child.stdout });
lines.on('line', (line) => {
  console.log(line);
  if (/^not ok \d+/.test(line)) {
    // ava marks todo tests "not ok ... # TODO"; they are not failures.
    if (/# TODO/i.test(line)) skipped++;
    else failed++;
  } else if (/^ok \d+/.test(line)) {
    if (/# SKIP/i.test(line)) skipped++;
    else passed++;
  }
});

child.on('close', (code) => {
  // A crash or a run that found no tests is a failure even if no test line said so.
  if (code !== 0 && failed === 0) failed = 1;
  if (passed + failed === 0) failed = 1;
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed > 0 ? 1 : 0);
});
