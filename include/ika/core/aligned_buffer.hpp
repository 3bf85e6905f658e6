// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>

namespace ika::detail {

// A fixed-size, 64-byte aligned, uninitialised array of a trivial type: the engines' workspaces.
template <class T>
class aligned_buffer {
  static_assert(std::is_trivial_v<T>);
  struct deleter {
    void operator()(T* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };

public:
  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t n)
      : data_(n ? static_cast<T*>(::operator new[](n * sizeof(T), std::align_val_t(64))) : nullptr), size_(n) {}
  T* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) const { return data_.get()[i]; }

private:
  std::unique_ptr<T[], deleter> data_;
  std::size_t size_ = 0;
};

} // namespace ika::detail
