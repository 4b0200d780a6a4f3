// Feeds the text of a genotype JSON file to Genotype::parse, the parser behind
// Genotype::load (`onnas train/eval/plan --genotype`), then validates and round-trips it.
// Refusing with onnas::Error is fine; any other exception, a crash, a hang, a huge
// allocation or a sanitizer report is a finding (keep it in tests/regressions/genotype/).
#include <cstdint>

#include "fuzz/feed.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    onnas::fuzz::feed_genotype(std::span<const uint8_t>(data, size));
  } catch (const onnas::Error&) {
  }
  return 0;
}
