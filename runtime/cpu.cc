#include "runtime/cpu.h"

#include <cstdlib>
#include <cstring>

#include "runtime/kernels/cpu_features.h"

namespace onnas {
namespace {

Isa from_env(Isa best) {
  const char* s = std::getenv("ONNAS_ISA");
  if (!s) return best;
  for (Isa isa : kAllIsas)
    if (std::strcmp(s, isa_name(isa)) == 0) return isa_available(isa) ? isa : best;
  return best;
}

Isa& active() {
  static Isa isa = from_env(detected_isa());
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::reference: return "reference";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

bool isa_available(Isa isa) { return kernels::cpu_supports(isa); }

Isa detected_isa() {
  static const Isa isa = [] {
    constexpr Isa kFastestFirst[] = {Isa::avx512, Isa::avx2, Isa::neon};
    for (Isa i : kFastestFirst)
      if (isa_available(i)) return i;
    return Isa::reference;
  }();
  return isa;
}

Isa active_isa() { return active(); }

void set_isa(Isa isa) { active() = isa_available(isa) ? isa : detected_isa(); }

}  // namespace onnas
