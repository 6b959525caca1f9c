/** The brain-ldm command line. Each command lives in ts/cli/<name>-command.ts. */
import { parseArgs } from 'node:util';
import { infoCommand, packageVersion } from './cli/info-command.js';
import { importCommand } from './cli/import-command.js';
import { runNetworkCommand } from './cli/run-network-command.js';
import { generateCommand } from './cli/generate-command.js';
import { calibrateCommand } from './cli/calibrate-command.js';
import { evaluateCommand } from './cli/evaluate-command.js';
import { labelPresenceCommand } from './cli/label-presence-command.js';
import { autoencoderDiceCommand } from './cli/autoencoder-dice-command.js';
import { synthsegImagesCommand } from './cli/synthseg-images-command.js';
import { prepareLabelsCommand } from './cli/prepare-labels-command.js';
import { augmentLabelsCommand } from './cli/augment-labels-command.js';
import { validateNetworkWeights } from './nets/network.js';
import type { BackendRequest, Precision } from './backend/types.js';

const USAGE = `usage: brain-ldm <command> [options]

commands:
  info          backend, ISA, threads and versions; which backends load and why not
  import        a MONAI .pt/.pth checkpoint -> a brain-ldm model bundle (brain-ldm import --help)
  run-network   run a bundle's network on inputs from a safetensors file (brain-ldm run-network --help)
  generate      labeled pairs (image + label map) with the ventricle volume asked for (brain-ldm generate --help)
  calibrate     measure and store the map from requested mL to the model's condition (brain-ldm calibrate --help)
  label-presence  where each label belongs, from reference maps: generation grows labels a mask lacks (--help)
  evaluate      quality report of a generated folder: anatomy, contrast, volume adherence (brain-ldm evaluate --help)
  autoencoder-dice  Dice of label maps encoded and decoded by a generator's mask autoencoder
  synthseg-images  SynthSeg-style images for label maps (brain-ldm synthseg-images --help)
  prepare-labels   aseg-style label maps -> SynthSeg labels on the training grid (brain-ldm prepare-labels --help)
  augment-labels   augmented label maps: enlarged ventricles, affine + elastic, flip (brain-ldm augment-labels --help)

common options:
  --backend <name>   auto (default), native, wasm, wasm-simd-threads, wasm-simd, wasm-scalar
  --threads <n>      worker threads (default: one per core)
  --isa <name>       native kernels: auto, avx512, avx2, scalar
  --precision <p>    fp32 (default) or bf16 (native with AVX512-BF16: bfloat16 convolution products, fp32 sums)
  --json             machine-readable output
  --version, --help`;

export async function main(argv: string[], print: (line: string) => void = console.log): Promise<number> {
  // Commands with options of their own parse their arguments themselves.
  const [first, ...rest] = argv;
  try {
    if (first === 'import') return await importCommand(rest, print, { validate: validateNetworkWeights });
    if (first === 'run-network') return await runNetworkCommand(rest, print);
    if (first === 'generate') return await generateCommand(rest, print);
    if (first === 'calibrate') return await calibrateCommand(rest, print);
    if (first === 'evaluate') return await evaluateCommand(rest, print);
    if (first === 'label-presence') return await labelPresenceCommand(rest, print);
    if (first === 'autoencoder-dice') return await autoencoderDiceCommand(rest, print);
    if (first === 'synthseg-images') return await synthsegImagesCommand(rest, print);
    if (first === 'prepare-labels') return await prepareLabelsCommand(rest, print);
    if (first === 'augment-labels') return await augmentLabelsCommand(rest, print);
  } catch (e) {
    console.error(`brain-ldm ${first}: ${(e as Error).message}`);
    return 1;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        backend: { type: 'string' },
        threads: { type: 'string' },
        isa: { type: 'string' },
        precision: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (e) {
    console.error(`brain-ldm: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) { print(packageVersion()); return 0; }
  const command = positionals[0];
  if (values.help || !command) { print(USAGE); return command || values.help ? 0 : 2; }
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1) {
      console.error(`brain-ldm: --threads must be a positive integer, got '${values.threads}'`);
      return 2;
    }
  }
  try {
    switch (command) {
      case 'info':
        return await infoCommand({ backend: values.backend as BackendRequest | undefined, threads, isa: values.isa,
          precision: values.precision as Precision | undefined, json: values.json }, print);
      default:
        console.error(`brain-ldm: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    console.error(`brain-ldm ${command}: ${(e as Error).message}`);
    return 1;
  }
}
