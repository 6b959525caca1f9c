/** precision 'bf16' on AMX tiles (the default bf16 kernels where the CPU has AMX-BF16): test/helpers/bf16-conv-specs.ts. */
import { bf16ConvSpecs } from '../helpers/bf16-conv-specs.js';

bf16ConvSpecs('amx-bf16');
