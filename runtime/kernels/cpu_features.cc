#include "runtime/kernels/cpu_features.h"

namespace onnas::kernels {
namespace {

#if defined(ONNAS_KERNELS_X86)
struct X86Features {
  bool avx2_fma, avx512;
};

const X86Features& x86_features() {
  static const X86Features f = [] {
    __builtin_cpu_init();
    return X86Features{
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")};
  }();
  return f;
}
#endif

}  // namespace

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::reference: return true;
#if defined(ONNAS_KERNELS_X86)
    case Isa::avx2: return x86_features().avx2_fma;
    case Isa::avx512: return x86_features().avx512;
#endif
#if defined(ONNAS_KERNELS_NEON)
    // Advanced SIMD is a mandatory part of ARMv8-A: every aarch64 Linux CPU has it.
    case Isa::neon: return true;
#endif
    default: return false;
  }
}

}  // namespace onnas::kernels
