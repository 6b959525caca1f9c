/**
 * precision 'bf16' on AVX512-BF16 dot products (the bf16 kernels of CPUs without AMX, e.g. Zen 4; chosen here on an
 * AMX CPU too, before the addon loads): test/helpers/bf16-conv-specs.ts.
 */
import { bf16ConvSpecs } from '../helpers/bf16-conv-specs.js';

process.env.BRAIN_LDM_BF16_KERNELS = 'avx512-bf16';
bf16ConvSpecs('avx512-bf16');
