/** `brain-ldm import`: a MONAI .pt/.pth checkpoint -> a brain-ldm model bundle (model.json + weights.safetensors). */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { importCheckpoint, type ImportReport, type ValidateWeights } from '../bundle/import-checkpoint.js';
import { NETWORK_CLASSES } from '../bundle/model-bundle.js';

export const IMPORT_USAGE = `usage: brain-ldm import <file.pth> --network <Class> --args <json | @file.json> --out <bundle-dir> [options]

Reads a checkpoint written by torch.save (bare state_dict, {"model": ...} or {"state_dict": ...}; monai-generative
0.2.3 or MONAI core names) without running any code from it, and writes a bundle with canonical weight names.

options:
  --network <Class>             ${NETWORK_CLASSES.join(', ')}
  --args <json | @file.json>    the MONAI constructor arguments (num_channels or channels)
  --out <dir>                   bundle directory to create
  --wrapper-embedding <N>x<D>   the thesis EmbeddingWrapper, e.g. 61x64 (detected from the keys when omitted)
  --state-dict-key <key>        top-level key holding the state_dict, when the file holds several
  --scale-factor <x>            latent scale factor to record in the bundle
  --overwrite                   replace an existing bundle at --out
  --json                        print the import report as JSON`;

/** parseArgs options for `import`, for wiring into ts/cli.ts. */
export const IMPORT_OPTIONS = {
  network: { type: 'string' },
  args: { type: 'string' },
  out: { type: 'string' },
  'wrapper-embedding': { type: 'string' },
  'state-dict-key': { type: 'string' },
  'scale-factor': { type: 'string' },
  overwrite: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export interface ImportCommandOptions {
  file?: string;
  network?: string;
  args?: string;
  out?: string;
  wrapperEmbedding?: string;
  stateDictKey?: string;
  scaleFactor?: string;
  overwrite?: boolean;
  json?: boolean;
}

/** A wrong or missing option: the caller prints the message with the usage and exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses `import` arguments (everything after the word `import`). */
export function parseImportArgs(argv: string[]): ImportCommandOptions {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: IMPORT_OPTIONS });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new UsageError(`expected one checkpoint file, got ${positionals.length}: ${positionals.join(' ')}`);
  return {
    file: positionals[0], network: values.network, args: values.args, out: values.out,
    wrapperEmbedding: values['wrapper-embedding'], stateDictKey: values['state-dict-key'], scaleFactor: values['scale-factor'],
    overwrite: values.overwrite, json: values.json,
  };
}

function parseNetworkArgs(text: string): Record<string, unknown> {
  let source = '--args';
  let json = text;
  if (text.startsWith('@')) {
    source = text.slice(1);
    try {
      json = readFileSync(source, 'utf8');
    } catch (e) {
      throw new UsageError(`--args ${text}: cannot read ${source}: ${(e as Error).message}`);
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new UsageError(`${source}: not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${source}: must be a JSON object of constructor arguments`);
  return v as Record<string, unknown>;
}

function parseWrapper(text: string): { num_embeddings: number; embedding_dim: number } {
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new UsageError(`--wrapper-embedding must be <num_embeddings>x<embedding_dim> such as 61x64, got '${text}'`);
  return { num_embeddings: Number(m[1]), embedding_dim: Number(m[2]) };
}

/**
 * Runs `brain-ldm import`. `argv` is either the arguments after `import` or options already parsed (as by
 * IMPORT_OPTIONS). Returns the exit code: 0 done, 2 usage error (message and usage printed to `printError`).
 * Import failures throw; the CLI prints their message and exits 1. `validate` checks the weights against the
 * network graph (see ImportCheckpointOptions).
 */
export async function importCommand(
  argv: string[] | ImportCommandOptions,
  print: (line: string) => void,
  options: { validate?: ValidateWeights; printError?: (line: string) => void } = {},
): Promise<number> {
  const printError = options.printError ?? ((l: string) => console.error(l));
  let report: ImportReport;
  try {
    const o = Array.isArray(argv) ? parseImportArgs(argv) : argv;
    if (!o.file) throw new UsageError('missing the checkpoint file');
    if (!o.network) throw new UsageError('missing --network <Class>');
    if (!o.args) throw new UsageError('missing --args <json | @file.json>');
    if (!o.out) throw new UsageError('missing --out <bundle-dir>');
    let scaleFactor: number | null = null;
    if (o.scaleFactor !== undefined) {
      scaleFactor = Number(o.scaleFactor);
      if (!Number.isFinite(scaleFactor) || scaleFactor <= 0) throw new UsageError(`--scale-factor must be a positive number, got '${o.scaleFactor}'`);
    }
    const args = parseNetworkArgs(o.args);
    const wrapper = o.wrapperEmbedding !== undefined ? parseWrapper(o.wrapperEmbedding) : undefined;
    report = await importCheckpoint({
      file: o.file, network: o.network, args, out: o.out, wrapper, validate: options.validate,
      stateDictKey: o.stateDictKey, scaleFactor, overwrite: o.overwrite,
    }).catch((e: unknown) => {
      // A bad --network value is the user's option, not a failure of the import.
      if (e instanceof RangeError && /argument 'network'/.test(e.message)) throw new UsageError(`--network must be one of ${NETWORK_CLASSES.join(', ')}, got '${o.network}'`);
      throw e;
    });
    if (o.json) {
      const { config, ...rest } = report;
      print(JSON.stringify({ ...rest, provenance: config.provenance }, null, 2));
      return 0;
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    printError(`brain-ldm import: ${e.message}\n\n${IMPORT_USAGE}`);
    return 2;
  }
  print(`read ${report.source}: ${report.containerDescription}, sha256 ${report.sha256}`);
  print(`key scheme: ${report.scheme} (${report.schemeEvidence}); ${report.renamed} renamed, ${report.synthesized.length} synthesised, ${report.dropped.length} dropped`);
  if (report.dropped.length) print(`dropped: ${report.dropped.join(', ')}`);
  if (report.synthesized.length) print(`synthesised (identity projections where MONAI core has none): ${report.synthesized.join(', ')}`);
  if (report.convertedFromFloat64.length) print(`float64 -> float32: ${report.convertedFromFloat64.length} tensors`);
  print(`attention output projection: ${report.attentionOutputProjection ? 'applied (MONAI core, include_fc=True)' : 'not applied (as monai-generative 0.2.3)'}`);
  if (report.wrapper) print(`wrapper: EmbeddingWrapper ${report.wrapper.num_embeddings}x${report.wrapper.embedding_dim}${report.wrapperDetected ? ' (embedding.weight + autoencoder.*)' : ''}`);
  const dtypes = Object.entries(report.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
  print(`wrote ${report.out}: ${report.tensors} tensors (${dtypes}), ${report.parameters} values`);
  return 0;
}
