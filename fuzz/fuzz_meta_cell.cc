// Feeds a whole meta cell file (a safetensors file whose metadata names the search
// space, holding the stem, classifier, alpha/beta and "meta_cell.*") to load_meta_cell,
// the reader behind `onnas inspect`, `adapt --meta-cell` and `eval-fewshot --meta-cell`,
// which rebuilds the space's supernet and unfolds the meta cell into every cell.
// Refusing with onnas::Error is fine; any other exception, a crash, a hang, a huge
// allocation or a sanitizer report is a finding (keep it in tests/regressions/meta_cell/).
#include <cstdint>

#include "fuzz/feed.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    onnas::fuzz::feed_meta_cell(std::span<const uint8_t>(data, size));
  } catch (const onnas::Error&) {
  }
  return 0;
}
