// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"

namespace ika::ad {

// The shape of a dense row-major tensor: rank 0 (a scalar) to 4.
class shape {
public:
  static constexpr int max_rank = 4;

  shape() = default;
  shape(std::initializer_list<index_t> dims) { assign(dims.begin(), dims.end()); }
  explicit shape(std::span<const index_t> dims) { assign(dims.begin(), dims.end()); }

  int rank() const { return rank_; }
  index_t operator[](int axis) const { return dims_[std::size_t(axis)]; }
  index_t& operator[](int axis) { return dims_[std::size_t(axis)]; }
  index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[std::size_t(i)];
    return n;
  }
  const index_t* begin() const { return dims_.data(); }
  const index_t* end() const { return dims_.data() + rank_; }

  // The dims left-padded with 1 to rank 4.
  std::array<index_t, 4> padded() const {
    std::array<index_t, 4> out{1, 1, 1, 1};
    for (int i = 0; i < rank_; ++i) out[std::size_t(4 - rank_ + i)] = dims_[std::size_t(i)];
    return out;
  }

  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[std::size_t(i)]);
    return s + (rank_ == 1 ? ",)" : ")");
  }

  friend bool operator==(const shape& a, const shape& b) {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }

private:
  template <class It>
  void assign(It first, It last) {
    const auto n = last - first;
    detail::require(n <= max_rank, "shape", "a rank of at most 4, got ", n);
    rank_ = int(n);
    for (int i = 0; first != last; ++first, ++i) {
      detail::require(*first >= 0, "shape", "non-negative sizes, got ", *first, " at axis ", i);
      dims_[std::size_t(i)] = *first;
    }
  }

  std::array<index_t, 4> dims_{};
  int rank_ = 0;
};

// A dense row-major tensor of float or double that owns its values. `resize` keeps the capacity,
// so a tensor refilled with the same shape every step never reallocates.
template <class T>
class tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "ika::ad::tensor: float or double");

public:
  using value_type = T;

  tensor() : data_(1, T(0)) {} // a scalar 0
  explicit tensor(const ad::shape& s, T fill = T(0)) : shape_(s), data_(std::size_t(s.numel()), fill) {}
  tensor(const ad::shape& s, std::span<const T> values) : shape_(s), data_(values.begin(), values.end()) {
    detail::require(index_t(values.size()) == s.numel(), "values", s.numel(), " values for shape ", s.str(), ", got ",
                    values.size());
  }
  tensor(const ad::shape& s, std::initializer_list<T> values) : tensor(s, std::span<const T>(values.begin(), values.size())) {}

  const ad::shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  index_t dim(int axis) const { return shape_[axis]; }
  index_t size() const { return index_t(data_.size()); }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T& operator[](index_t i) { return data_[std::size_t(i)]; }
  const T& operator[](index_t i) const { return data_[std::size_t(i)]; }
  T* begin() { return data_.data(); }
  T* end() { return data_.data() + data_.size(); }
  const T* begin() const { return data_.data(); }
  const T* end() const { return data_.data() + data_.size(); }
  std::size_t capacity() const { return data_.capacity(); }

  // New shape; values are unspecified unless the size is unchanged. Never shrinks the capacity.
  void resize(const ad::shape& s) {
    shape_ = s;
    data_.resize(std::size_t(s.numel()));
  }
  void fill(T value) { std::fill(data_.begin(), data_.end(), value); }

private:
  ad::shape shape_;
  std::vector<T> data_;
};

} // namespace ika::ad
