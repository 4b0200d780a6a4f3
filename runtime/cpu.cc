#include "runtime/cpu.h"

#include <cstdlib>
#include <cstring>

namespace onnas {
namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::reference;
}

Isa from_env(Isa best) {
  const char* s = std::getenv("ONNAS_ISA");
  if (!s) return best;
  Isa want = best;
  if (std::strcmp(s, "reference") == 0) want = Isa::reference;
  if (std::strcmp(s, "avx2") == 0) want = Isa::avx2;
  if (std::strcmp(s, "avx512") == 0) want = Isa::avx512;
  return want < best ? want : best;
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
  }
  return "?";
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() { return active(); }

void set_isa(Isa isa) { active() = isa < detected_isa() ? isa : detected_isa(); }

}  // namespace onnas
