#include "kernels.h"

namespace bl {

const KernelTable* kernels_for(Isa isa) {
  switch (isa) {
#if defined(BL_HAVE_X86_KERNELS)
    case Isa::Scalar: return kernels_scalar();
    case Isa::Avx2: return kernels_avx2();
    case Isa::Avx512: return kernels_avx512();
#elif defined(__wasm_simd128__)
    case Isa::WasmSimd128: return kernels_simd128();
#else
    case Isa::Scalar: return kernels_scalar();
#endif
    default: return nullptr;
  }
}

}  // namespace bl
