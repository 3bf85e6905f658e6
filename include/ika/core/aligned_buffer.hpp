// SPDX-License-Identifier: MIT
#pragma once

#include <array>
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

namespace ika::detail {

// Grow-only scratch memory of the calling thread, one arena per Owner type, reused across calls:
// fresh allocations of a few MiB per call cost page faults comparable to a whole small attention
// call. The memory stays valid until the same thread asks the same Owner again; it holds the
// largest size asked for until the thread exits.
class scratch_arena {
public:
  // Room for `counts[i]` values of T in each of the parts, each part 64-byte aligned.
  template <class Owner, class T, std::size_t N>
  static std::array<T*, N> parts(const std::array<std::size_t, N>& counts) {
    static_assert(std::is_trivial_v<T>);
    std::array<std::size_t, N> offsets{};
    std::size_t total = 0;
    for (std::size_t i = 0; i < N; ++i) {
      offsets[i] = total;
      total += (counts[i] * sizeof(T) + 63) / 64 * 64;
    }
    thread_local aligned_buffer<std::byte> memory;
    if (memory.size() < total) memory = aligned_buffer<std::byte>(total);
    std::array<T*, N> out{};
    for (std::size_t i = 0; i < N; ++i) out[i] = reinterpret_cast<T*>(memory.data() + offsets[i]);
    return out;
  }
};

} // namespace ika::detail
