/** `brain-ldm info`: which backend runs, with which ISA, threads and versions, and why others don't load. */
import { readFileSync } from 'node:fs';
import { loadBackend, probeBackends } from '../backend/select.js';
import { loadNativeAddon } from '../backend/native-binding.js';
import type { BackendRequest, Precision } from '../backend/types.js';

export interface InfoOptions {
  backend?: BackendRequest;
  threads?: number;
  isa?: string;
  precision?: Precision;
  json?: boolean;
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function infoCommand(options: InfoOptions, print: (line: string) => void): Promise<number> {
  const backend = await loadBackend({ backend: options.backend, threads: options.threads, isa: options.isa, precision: options.precision });
  const selected = backend.info();
  await backend.dispose();
  const all = await probeBackends({ threads: options.threads });
  const rows = all.map((r) => {
    const info = r.backend?.info();
    return { name: r.name, ok: Boolean(r.backend), isa: info?.isa, threads: info?.threads, compiler: info?.compiler, error: r.error };
  });
  await Promise.all(all.map((r) => r.backend?.dispose()));
  const report = {
    brainLdm: packageVersion(),
    node: process.version,
    napi: process.versions.napi,
    platform: `${process.platform} ${process.arch}`,
    selected,
    bf16Kernels: selected.backend === 'native' ? loadNativeAddon().addon.bf16Kernels || null : null,
    backends: rows,
  };
  if (options.json) {
    print(JSON.stringify(report, null, 2));
    return 0;
  }
  print(`brain-ldm ${report.brainLdm}`);
  print(`node ${report.node} (Node-API ${report.napi}), ${report.platform}`);
  print(`backend: ${selected.backend}`);
  print(`isa: ${selected.isa}`);
  print(`threads: ${selected.threads} (idle threads spin ${selected.spinMicros} us before they sleep; BRAIN_LDM_SPIN_US)`);
  print(`batch shares: ${selected.splitBatch ? 'on' : 'off'} (a batch runs in shares, one per group of threads; BRAIN_LDM_SPLIT_BATCH)`);
  print(`precision: ${selected.precision}`);
  if (selected.backend === 'native') {
    const kernels = loadNativeAddon().addon.bf16Kernels;
    print(`bf16 kernels: ${kernels || 'none on this CPU (precision bf16 needs AMX-BF16 or AVX512-BF16)'}`);
  }
  print(`core: ${selected.coreVersion} (${selected.compiler})`);
  print('available backends:');
  for (const r of rows)
    print(`  ${r.name.padEnd(18)} ${r.ok ? `ok    ${r.isa}, ${r.threads} thread${r.threads === 1 ? '' : 's'}, ${r.compiler}` : `no    ${r.error}`}`);
  return 0;
}
