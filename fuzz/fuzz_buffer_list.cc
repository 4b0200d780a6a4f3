// Feeds a buffer-list JSON file ([{"name", "bytes", "first", "last"}, ...]) to
// parse_buffer_list, then plans it and proves the plan, as `onnas plan --buffers` does.
// Refusing with std::invalid_argument is fine; any other exception, a crash, a hang, a huge
// allocation or a sanitizer report is a finding (keep it in tests/regressions/buffer_list/).
#include <cstdint>
#include <stdexcept>

#include "fuzz/feed.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    onnas::fuzz::feed_buffer_list(std::span<const uint8_t>(data, size));
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
