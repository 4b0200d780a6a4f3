// Feeds an IDX images file and an IDX labels file, plain or gzip'ed, to load_idx
// (the MNIST family; input layout in feed_idx).
// Refusing with onnas::Error is fine; any other exception, a crash, a hang, a huge
// allocation or a sanitizer report is a finding (keep it in tests/regressions/idx/).
#include <cstdint>

#include "fuzz/feed.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    onnas::fuzz::feed_idx(std::span<const uint8_t>(data, size));
  } catch (const onnas::Error&) {
  }
  return 0;
}
