// Errors, in two tiers (see STYLE.md, habit 7).
//
// At the API boundary, invalid use throws onnas::Error with one sentence that names
// the op, value or file and what was expected:
//
//   throw Error(fmt::format("conv2d '{}': input has {} channels, weight expects {}", ...));
//
// Inside, ONNAS_CHECK(cond, fmt, args...) is an always-on invariant check that also
// reports the source file and line; it throws onnas::Error too, so a tool can print it.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace onnas {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

namespace detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& message);
}  // namespace detail

}  // namespace onnas

#define ONNAS_CHECK(cond, ...)                                                                 \
  do {                                                                                         \
    if (!(cond)) [[unlikely]]                                                                  \
      ::onnas::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__));    \
  } while (0)

// Checks that cost something on the hot path; compiled out of release builds.
#ifdef NDEBUG
#define ONNAS_DCHECK(cond, ...) \
  do {                          \
  } while (0)
#else
#define ONNAS_DCHECK(cond, ...) ONNAS_CHECK(cond, __VA_ARGS__)
#endif
