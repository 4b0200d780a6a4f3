// Which instruction set the fast kernels use, chosen at run time.
//
// The machine's best ISA is detected once (AVX-512F+VL+DQ, else AVX2+FMA, else the
// portable reference). ONNAS_ISA=avx2|avx512|reference in the environment, or
// set_isa(), forces a lower one — tests use it to run the AVX2 path on AVX-512 hardware.
#pragma once

namespace onnas {

enum class Isa { reference, avx2, avx512 };

const char* isa_name(Isa isa);
Isa detected_isa();  // what the CPU supports
Isa active_isa();    // what the kernels use (detected, or lower if forced)
// Forces `isa` (clamped to what the CPU supports). Not thread-safe against running kernels.
void set_isa(Isa isa);

}  // namespace onnas
