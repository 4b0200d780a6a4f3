// graph/: Attrs and AttrsTable (attrs.h).
#include "graph/attrs.h"

#include "runtime/error.h"

namespace onnas::graph {

void fail_attrs_type(const AttrsType* held, const std::type_info& wanted) {
  if (!held) fail("an op reads attributes of type {}, but its node has none", wanted.name());
  fail("an op reads attributes of type {}, but its node holds {}", wanted.name(), held->type->name());
}

AttrsTable& AttrsTable::operator=(AttrsTable&& other) noexcept {
  if (this != &other) {
    clear();
    memory_ = std::move(other.memory_);
    end_ = std::exchange(other.end_, 0);
    owning_ = std::move(other.owning_);
    other.owning_.clear();
  }
  return *this;
}

uint32_t AttrsTable::add(const Attrs& a) {
  const AttrsType& t = *a.type();
  const size_t offset = (end_ + t.align - 1) / t.align * t.align;
  ONNAS_CHECK(offset + t.size <= memory_.bytes() && offset <= UINT32_MAX,
              "an attribute table of {} bytes has no room for {} more at {}", memory_.bytes(), t.size, offset);
  t.copy(static_cast<std::byte*>(memory_.data()) + offset, a.data());
  if (t.destroy) owning_.push_back({uint32_t(offset), t.destroy});
  end_ = offset + t.size;
  return uint32_t(offset);
}

void AttrsTable::clear() {
  for (const Owning& o : owning_) o.destroy(static_cast<std::byte*>(memory_.data()) + o.offset);
  owning_.clear();
  memory_ = Buffer();
  end_ = 0;
}

}  // namespace onnas::graph
