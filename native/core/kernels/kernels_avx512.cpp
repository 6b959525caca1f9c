// Kernels for ISA 'avx512': kernels_impl.inc compiled with this file's target flags
// (set per source in CMakeLists.txt, binding.gyp and wasm/build.sh).
#include "kernels.h"
#define BL_TABLE_FN kernels_avx512
#define BL_ISA ::bl::Isa::Avx512
#define BL_ISA_NAME "avx512"
#include "kernels_impl.inc"
