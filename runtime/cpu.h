// Which instruction set the fast kernels use, chosen at run time.
//
// What a build can use depends on the architecture it is compiled for (runtime/CMakeLists.txt):
// on x86-64, AVX2+FMA and AVX-512F+VL+DQ kernels, detected once on the running CPU; on aarch64,
// NEON (part of every ARMv8-A core); anywhere else, or with -DONNAS_PORTABLE=ON, only the
// portable reference. ONNAS_ISA=reference|avx2|avx512|neon in the environment, or set_isa(),
// forces another available one — tests use it to run every path the machine has.
//
//   for (Isa isa : kAllIsas)
//     if (isa_available(isa)) { set_isa(isa); ... }
#pragma once

namespace onnas {

enum class Isa { reference, avx2, avx512, neon };
inline constexpr Isa kAllIsas[] = {Isa::reference, Isa::avx2, Isa::avx512, Isa::neon};

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled into this build and supported by this CPU
Isa detected_isa();           // the best available one
Isa active_isa();             // what the kernels use (detected, or forced)
// Forces `isa` when available; otherwise the detected one (forcing never gives a kernel the CPU
// lacks). Not thread-safe against running kernels.
void set_isa(Isa isa);

}  // namespace onnas
