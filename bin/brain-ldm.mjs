#!/usr/bin/env node
// Entry point installed as `brain-ldm`; the CLI itself is ts/cli.ts compiled to dist/.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('brain-ldm: dist/ is not built; run `npm run build:ts` (or `npm run build`) first');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
