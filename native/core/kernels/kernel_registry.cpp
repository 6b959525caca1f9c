#include "kernels.h"

#include "../isa.h"
#include "bf16.h"

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

#if defined(BL_HAVE_X86_KERNELS)
const Bf16Kernels* bf16_kernels_avx512();
#endif

const Bf16Kernels* bf16_kernels() {
#if defined(BL_HAVE_X86_KERNELS)
  static const bool have = isa_supported(Isa::Avx512) && __builtin_cpu_supports("avx512bf16");
  return have ? bf16_kernels_avx512() : nullptr;
#else
  return nullptr;
#endif
}

}  // namespace bl
