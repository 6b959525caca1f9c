// Kernels for ISA 'simd128': kernels_impl.inc compiled with this file's target flags
// (set per source in CMakeLists.txt, binding.gyp and wasm/build.sh).
#include "kernels.h"
#define BL_TABLE_FN kernels_simd128
#define BL_ISA ::bl::Isa::WasmSimd128
#define BL_ISA_NAME "simd128"
#include "kernels_impl.inc"
