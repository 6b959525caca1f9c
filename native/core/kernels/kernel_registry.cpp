#include "kernels.h"

#include <cstdlib>
#include <cstring>

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
const Bf16Kernels* bf16_kernels_amx();
#endif

const Bf16Kernels* bf16_kernels() {
#if defined(BL_HAVE_X86_KERNELS)
  static const Bf16Kernels* const best = []() -> const Bf16Kernels* {
    if (!isa_supported(Isa::Avx512)) return nullptr;
    // BRAIN_LDM_BF16_KERNELS=avx512-bf16 keeps the dot-product kernels on an AMX machine (tests, benchmarks).
    const char* want = std::getenv("BRAIN_LDM_BF16_KERNELS");
    const bool amx_allowed = !want || std::strcmp(want, "avx512-bf16") != 0;
    if (amx_allowed && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16"))
      if (const Bf16Kernels* amx = bf16_kernels_amx()) return amx;
    return __builtin_cpu_supports("avx512bf16") ? bf16_kernels_avx512() : nullptr;
  }();
  return best;
#else
  return nullptr;
#endif
}

}  // namespace bl
