// Kernels for ISA 'avx2': kernels_impl.inc compiled with this file's target flags
// (set per source in CMakeLists.txt, binding.gyp and wasm/build.sh).
#include "kernels.h"
#define BL_TABLE_FN kernels_avx2
#define BL_ISA ::bl::Isa::Avx2
#define BL_ISA_NAME "avx2"
#include "kernels_impl.inc"
