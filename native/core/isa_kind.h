// The ISA enum alone, with no includes, so per-ISA kernel TUs can name it
// without pulling C++ headers into code compiled with wider target flags.
#pragma once

namespace bl {
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, WasmSimd128 = 3 };
}  // namespace bl
