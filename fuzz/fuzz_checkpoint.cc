// Feeds a checkpoint (a safetensors file with "step", "epoch" or "meta_epoch" in its
// metadata) to the reader and the counter checks behind `onnas search / train /
// meta-train --resume`: counters must be whole numbers within the run, tensors finite.
// Refusing with onnas::Error is fine; any other exception, a crash, a hang, a huge
// allocation or a sanitizer report is a finding (keep it in tests/regressions/checkpoint/).
#include <cstdint>

#include "fuzz/feed.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    onnas::fuzz::feed_checkpoint(std::span<const uint8_t>(data, size));
  } catch (const onnas::Error&) {
  }
  return 0;
}
