// Feeds a CIFAR-10 binary batch, plain or gzip'ed, to load_cifar10 (layout in
// feed_cifar).
// Refusing with onnas::Error is fine; any other exception, a crash, a hang, a huge
// allocation or a sanitizer report is a finding (keep it in tests/regressions/cifar/).
#include <cstdint>

#include "fuzz/feed.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    onnas::fuzz::feed_cifar(std::span<const uint8_t>(data, size));
  } catch (const onnas::Error&) {
  }
  return 0;
}
