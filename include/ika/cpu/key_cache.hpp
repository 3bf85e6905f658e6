// SPDX-License-Identifier: MIT
#pragma once

// A key cache for decoding: the keys' features and log-domain terms (kernel row term + magnitude)
// computed once, when the keys are appended, instead of at every decoding step. For the random
// Fourier kernels a key's 2M features cost 2·2·M·D flops and 2M sines and cosines, so without
// the cache one decoding step recomputes them for every key it has seen and is compute-bound;
// with it a step reads the prepared features and V once, like softmax reads K and V.
//
//   ika::key_cache<float, ika::yaglom_rff<float>, ika::lp> cache(logit, B, Hq, Hkv, D, capacity);
//   cache.append(k_new);                                   // (B, Hkv, n, D)
//   ika::attention(q, cache, v, out, ika::mask(ika::causal_lower_right{}));
//
// The cache holds a copy of the kernel and the norm; spectral points given as views are read at
// the first append after construction or clear(), so they must not change while the cache is in
// use (append again after clear() if they do).

#include <algorithm>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <vector>

#include "ika/core/aligned_buffer.hpp"
#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/decode.hpp"
#include "ika/cpu/fused.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/masks/mask_traits.hpp"
#include "ika/norms/magnitude_dropout.hpp"
#include "ika/norms/norm_traits.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

template <class T, class Kernel, class Norm = no_norm, class Heads = grouped_heads>
class key_cache {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "ika::key_cache: T must be float or double");
  static_assert(!detail::is_magnitude_dropout<Norm>, "ika::key_cache: magnitude dropout is a training-time term");

public:
  using value_type = T;
  using kernel_type = Kernel;
  using norm_type = Norm;
  using heads_type = Heads;

  // Room for `capacity` keys per (batch row, key/value head) of dimension `dim`, for queries with
  // q_heads heads. The masks of `logit`, if any, are not kept: they are given at each call.
  template <class... Masks>
  key_cache(const logit_expression<Kernel, Norm, Masks...>& logit, index_t batch, index_t q_heads, index_t kv_heads,
            index_t dim, index_t capacity)
      : kernel_(logit.kernel), norm_(logit.norm), batch_(batch), q_heads_(q_heads), kv_heads_(kv_heads), dim_(dim),
        capacity_(capacity) {
    detail::check_kernel_policy<Kernel, T>();
    detail::check_norm_policy<Norm, T>();
    detail::require(batch >= 0, "key_cache.batch", "B >= 0, got ", batch);
    detail::require(q_heads > 0 && kv_heads > 0, "key_cache.heads", "Hq >= 1 and Hkv >= 1, got Hq = ", q_heads,
                    ", Hkv = ", kv_heads);
    Heads::validate(q_heads, kv_heads);
    detail::require(dim > 0, "key_cache.dim", "D >= 1, got ", dim);
    detail::require(capacity >= 0, "key_cache.capacity", "capacity >= 0, got ", capacity);
    features_ = kernel_.template bind<T>(q_heads, dim).feature_dim();
    f_pad_ = detail::round_up(features_, index_t(simd::width<T>));
    feature_heads_ = Kernel::head_dependent ? q_heads : kv_heads;
    const std::size_t rows = std::size_t(batch * feature_heads_ * capacity);
    features_data_ = detail::aligned_buffer<T>(rows * std::size_t(f_pad_));
    bias_ = detail::aligned_buffer<T>(rows);
    std::fill(features_data_.data(), features_data_.data() + features_data_.size(), T(0));
  }

  index_t size() const { return size_; }
  index_t capacity() const { return capacity_; }
  index_t batch() const { return batch_; }
  index_t q_heads() const { return q_heads_; }
  index_t kv_heads() const { return kv_heads_; }
  index_t dim() const { return dim_; }
  const Kernel& kernel() const { return kernel_; }
  const Norm& norm() const { return norm_; }
  void clear() {
    size_ = 0;
    bound_.reset(); // the next append reads the spectral points again
    owned_points_.clear();
  }

  // Appends keys (B, Hkv, n, D): their features and terms for every feature head (every query
  // head when the kernel depends on the head, else every key/value head).
  template <class K>
  void append(tensor_view<K> k, int threads = 0) {
    static_assert(std::is_same_v<std::remove_const_t<K>, T>, "ika::key_cache::append: k must hold the cache's T");
    detail::check_view(k, "k");
    detail::require(threads >= 0, "threads", "a thread count >= 0 (0 = chosen from the call's size), got ", threads);
    detail::require(k.batch == batch_ && k.heads == kv_heads_ && k.cols == dim_, "k", "(B = ", batch_, ", Hkv = ",
                    kv_heads_, ", n, D = ", dim_, "), got (", k.batch, ", ", k.heads, ", ", k.rows, ", ", k.cols, ")");
    detail::require(size_ + k.rows <= capacity_, "k", "at most ", capacity_ - size_,
                    " new keys (capacity ", capacity_, ", ", size_, " held), got ", k.rows);
    const index_t n = k.rows;
    if (n == 0 || batch_ == 0) return;
    const bound_type& kernel = bound();
    const auto norm = norm_.template bind<T>(dim_);
    const tensor_view<const T> keys = k;
    const index_t tasks = batch_ * feature_heads_;
    const double work = double(tasks) * double(n) * detail::feature_row_work<bound_type>(features_, dim_);
    detail::run_in_team(detail::thread_team(threads, work, tasks), [&] {
      T* const scratch = detail::scratch_arena::parts<key_cache, T, 1>(
          {std::size_t(detail::key_block_size<bound_type, T> * features_)})[0];
#pragma omp for schedule(static)
      for (index_t task = 0; task < tasks; ++task) {
        const index_t b = task / feature_heads_, hf = task % feature_heads_;
        const index_t hk = Kernel::head_dependent ? Heads::kv_head(hf, q_heads_, kv_heads_) : hf;
        const index_t base = task * capacity_ + size_;
        detail::prepare_key_rows(kernel, norm, features_, hf, n, 0, n, [&](index_t j) { return keys.row(b, hk, j); },
                                 keys.cols, scratch, [&](index_t j, const T* features, double term) {
                                   if (features == nullptr) return; // padding keys: none, j < n = k_len
                                   T* row = features_data_.data() + (base + j) * f_pad_;
                                   std::copy(features, features + features_, row); // padding stays zero
                                   bias_.data()[base + j] = T(term);
                                 });
      }
    });
    size_ += n;
  }

  // The engine's view of the prepared rows.
  detail::prepared_key_rows<T> prepared() const {
    return {features_data_.data(), bias_.data(), feature_heads_, capacity_, f_pad_};
  }

  using bound_type = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  // The kernel the keys appended since construction or clear() were mapped with; null before the
  // first of them. The engine maps the queries with it instead of binding the kernel again.
  const bound_type* appended_kernel() const { return bound_ ? &*bound_ : nullptr; }

private:
  // The kernel bound once per fill of the cache, its packed spectral points (if it has any) moved
  // into the cache's own memory: binding packs them, 5-9 µs for 8 heads of Yaglom features with
  // M = 64, most of a one-key append (bench/results/blocking/row_count/).
  const bound_type& bound() {
    if (!bound_) {
      const bound_type fresh = kernel_.template bind<T>(q_heads_, dim_);
      if constexpr (requires(T* (*copy)(const T*, std::size_t)) { fresh.device_copy(copy); }) {
        // device_copy places the points wherever the copy puts them: here, memory the cache owns
        bound_ = fresh.device_copy([this](const T* values, std::size_t n) {
          T* kept = owned_points_.emplace_back(n).data();
          std::copy(values, values + n, kept);
          return kept;
        });
      } else {
        bound_ = fresh;
      }
    }
    return *bound_;
  }

  Kernel kernel_;
  Norm norm_;
  index_t batch_, q_heads_, kv_heads_, dim_, capacity_, size_ = 0;
  index_t features_ = 0, f_pad_ = 0, feature_heads_ = 0;
  detail::aligned_buffer<T> features_data_, bias_;
  std::optional<bound_type> bound_;
  std::vector<detail::aligned_buffer<T>> owned_points_;
};

// Attention of q (B, Hq, Lq, D) over the keys in `keys` (size() of them) and their values v
// (B, Hkv, size(), Dv): the same result as ika::attention with those keys and the cache's kernel
// and norm plus `masks`, by the split-key engine (meant for small Lq: decoding). out (B, Hq, Lq, Dv).
template <class Q, class V, class T, class Kernel, class Norm, class Heads, class... Masks>
void attention(tensor_view<Q> q, const key_cache<std::remove_const_t<T>, Kernel, Norm, Heads>& keys, tensor_view<V> v,
               tensor_view<T> out, const logit_expression<no_kernel, no_norm, Masks...>& masks = {},
               const std::type_identity_t<attention_options<T>>& options = {}) {
  detail::check_value_types<Q, Q, V, T>();
  (detail::check_mask_policy<Masks>(), ...);
  static_assert((0 + ... + int(detail::is_sparse_mask<decltype(std::declval<const Masks&>().bind(attention_shape{}))>)) == 0,
                "ika::attention with a key_cache: graph masks are not supported");
  // a stand-in for K with the cache's shape: the shape checks are those of ika::attention, and
  // the engine reads the prepared rows instead of it
  const T placeholder{};
  tensor_view<const T> k{&placeholder, keys.batch(), keys.kv_heads(), keys.size(), keys.dim(), 0, 0, 0};
  detail::require(q.heads == keys.q_heads(), "q", "Hq = ", keys.q_heads(), " (the cache's query heads), got ", q.heads);
  const attention_shape shape = detail::check_attention_args<Heads>(q, k, v, out, options);
  const logit_expression<Kernel, Norm, Masks...> logit{keys.kernel(), keys.norm(), masks.masks};
  using engine_type = detail::split_key_engine<T, Heads, Kernel, Norm, Masks...>;
  const auto* bound = keys.appended_kernel();
  engine_type engine = bound != nullptr ? engine_type(shape, logit, *bound) : engine_type(shape, logit);
  const detail::prepared_key_rows<T> prepared = keys.prepared();
  engine.use_prepared(prepared);
  engine.run(q, k, v, out, options.lse, options.threads);
}

} // namespace ika
