// Which of the fast kernel sets this build compiled, and whether the running CPU can use
// them: the one place that asks the CPU. runtime/cpu.h builds the run-time choice on it.
//
// runtime/CMakeLists.txt defines ONNAS_KERNELS_X86 (the _avx2 / _avx512 files, x86-64) or
// ONNAS_KERNELS_NEON (the _neon files, aarch64) for this library, never both, and neither in
// a portable build (-DONNAS_PORTABLE=ON, or another architecture). Code inside
// runtime/kernels/ tests these macros, not the compiler's, so a portable build carries no
// architecture-specific code at all.
//
//   if (kernels::cpu_supports(Isa::avx2)) ...
#pragma once

#include "runtime/cpu.h"

#if defined(ONNAS_KERNELS_X86) && !defined(__x86_64__)
#error "ONNAS_KERNELS_X86 is set but the compiler does not target x86-64"
#endif
#if defined(ONNAS_KERNELS_NEON) && !defined(__aarch64__)
#error "ONNAS_KERNELS_NEON is set but the compiler does not target aarch64"
#endif

namespace onnas::kernels {

// True when this build has the kernels of `isa` and this CPU runs them (reference: always).
bool cpu_supports(Isa isa);

}  // namespace onnas::kernels
