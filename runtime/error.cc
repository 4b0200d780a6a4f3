#include "runtime/error.h"

namespace onnas::detail {

void check_failed(const char* file, int line, const char* cond, const std::string& message) {
  throw Error(fmt::format("{} ({}:{}: check '{}' failed)", message, file, line, cond));
}

}  // namespace onnas::detail
