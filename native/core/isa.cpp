#include "isa.h"

#include "kernels/kernels.h"

namespace bl {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::WasmSimd128: return "simd128";
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  if (!kernels_for(isa)) return false;  // not compiled into this build
  switch (isa) {
    case Isa::Scalar: return true;
#if defined(BL_HAVE_X86_KERNELS)
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      // The AVX-512 kernels use F plus the VL/BW/DQ subsets every AVX-512 CPU since Skylake-X has.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
#endif
#if defined(__wasm_simd128__)
    case Isa::WasmSimd128: return true;
#endif
    default: return false;
  }
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  if (isa_supported(Isa::WasmSimd128)) return Isa::WasmSimd128;
  return Isa::Scalar;
}

Status parse_isa(const std::string& name, Isa* out) {
  if (name.empty() || name == "auto") { *out = best_isa(); return Status::ok(); }
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::WasmSimd128}) {
    if (name == isa_name(isa)) {
      if (!isa_supported(isa))
        return Status::range_error(std::string("isa '") + name + "' is not supported by this CPU/build (best: " +
                                   isa_name(best_isa()) + ")");
      *out = isa;
      return Status::ok();
    }
  }
  return Status::range_error("isa '" + name + "' is unknown; expected one of auto, scalar, avx2, avx512, simd128");
}

}  // namespace bl
