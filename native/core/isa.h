// Instruction-set selection, decided once when a context is created.
// x86-64 builds carry AVX-512, AVX2+FMA and baseline copies of every kernel;
// wasm builds carry exactly one (simd128 or scalar), fixed at compile time.
#pragma once
#include <string>

#include "isa_kind.h"
#include "status.h"

namespace bl {

const char* isa_name(Isa isa);
bool isa_supported(Isa isa);
Isa best_isa();
// Parses "auto", "scalar", "avx2", "avx512", "simd128"; names the accepted values on error.
Status parse_isa(const std::string& name, Isa* out);

}  // namespace bl
