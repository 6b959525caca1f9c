// Kernels for ISA 'scalar': kernels_impl.inc compiled with this file's target flags
// (set per source in CMakeLists.txt, binding.gyp and wasm/build.sh).
#include "kernels.h"
#define BL_TABLE_FN kernels_scalar
#define BL_ISA ::bl::Isa::Scalar
#define BL_ISA_NAME "scalar"
#include "kernels_impl.inc"
