// SPDX-License-Identifier: MIT
#pragma once

// The reference engine: SPEC §1–§4 and §6 written out in double precision, one (query, key)
// pair at a time, materialising each row of logits. It shares no arithmetic with the fused
// engine (only the parameter structs and the masks' scalar bias), so it can judge it.

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/random_fourier.hpp"
#include "ika/kernels/rbf.hpp"
#include "ika/norms/lp_norm.hpp"
#include "ika/norms/magnitude_dropout.hpp"

namespace ika::reference {

// ---- kernels: a per-head "prepared row" in double, then log κ of two prepared rows ----------


inline double log_kernel(const rbf& k, const std::vector<double>& q, const std::vector<double>& x) {
  const double s2 = k.resolved_bandwidth_sq(index_t(q.size()));
  double d2 = 0;
  for (std::size_t d = 0; d < q.size(); ++d) d2 += (q[d] - x[d]) * (q[d] - x[d]);
  return -d2 / (2 * s2);
}
inline double log_kernel(const dot_product& k, const std::vector<double>& q, const std::vector<double>& x) {
  double s = 0;
  for (std::size_t d = 0; d < q.size(); ++d) s += q[d] * x[d];
  return s * k.resolved_scale(index_t(q.size()));
}
inline double log_kernel(const laplacian& k, const std::vector<double>& q, const std::vector<double>& x) {
  double s = 0;
  for (std::size_t d = 0; d < q.size(); ++d) s += std::abs(q[d] - x[d]);
  return -s / k.resolved_bandwidth(index_t(q.size()));
}

// Random-feature kernels: rows are first mapped to φ(x), then log κ = log(k̂² + ε) (or the clamp).
template <class S>
std::vector<double> features(const random_fourier<S>& k, index_t h, const std::vector<double>& x) {
  const auto& w = k.omega;
  const index_t hh = w.heads == 1 ? 0 : h, M = w.count;
  std::vector<double> phi(2 * M);
  for (index_t m = 0; m < M; ++m) {
    double z = 0;
    for (index_t d = 0; d < w.dim; ++d) z += double(w(hh, d, m)) * x[d];
    phi[m] = std::cos(z) / std::sqrt(double(M));
    phi[M + m] = std::sin(z) / std::sqrt(double(M));
  }
  return phi;
}
template <class S>
std::vector<double> features(const yaglom_rff<S>& k, index_t h, const std::vector<double>& x) {
  const index_t hh = k.w1.heads == 1 ? 0 : h, M = k.w1.count;
  const double two_pi = 2 * std::numbers::pi;
  std::vector<double> phi(2 * M);
  for (index_t m = 0; m < M; ++m) {
    double z1 = 0, z2 = 0;
    for (index_t d = 0; d < k.w1.dim; ++d) {
      z1 += two_pi * double(k.w1(hh, d, m)) * x[d];
      z2 += two_pi * double(k.w2(hh, d, m)) * x[d];
    }
    phi[m] = (std::cos(z1) + std::cos(z2)) / std::sqrt(4.0 * double(M));
    phi[M + m] = (std::sin(z1) + std::sin(z2)) / std::sqrt(4.0 * double(M));
  }
  return phi;
}
template <class Kernel>
concept feature_kernel = requires(const Kernel& k, const std::vector<double>& x) { features(k, index_t{}, x); };

template <feature_kernel Kernel>
double log_kernel(const Kernel& k, const std::vector<double>& phi_q, const std::vector<double>& phi_k) {
  double s = 0;
  for (std::size_t f = 0; f < phi_q.size(); ++f) s += phi_q[f] * phi_k[f];
  return k.estimate == rff_estimate::squared ? std::log(s * s + k.epsilon) : std::log(std::max(s, k.epsilon));
}

// Rows as the kernel sees them: φ(x) for feature kernels, x itself otherwise.
template <class Kernel>
std::vector<double> prepared(const Kernel& k, index_t h, std::vector<double> x) {
  if constexpr (feature_kernel<Kernel>) return features(k, h, x);
  else return x;
}

// ---- magnitude ------------------------------------------------------------------------------

inline double magnitude(const lp& n, const std::vector<double>& x) {
  const double D = double(x.size());
  const double c = n.divisor == norm_divisor::paper ? 2 * std::sqrt(D) : 2 * std::pow(D, 0.25);
  const double r = n.exponent == norm_exponent::two ? 2.0 : n.p;
  double norm = 0;
  if (std::isinf(n.p)) {
    for (double v : x) norm = std::max(norm, std::abs(v));
  } else {
    double s = 0;
    for (double v : x) s += std::pow(std::abs(v), n.p);
    norm = std::pow(s, 1.0 / n.p);
  }
  return std::pow(norm, r) / c;
}
inline double magnitude(const no_norm&, const std::vector<double>&) { return 0; }
inline bool includes_query(const lp& n) { return n.include_query; }
inline bool includes_query(const no_norm&) { return false; }
// magnitude dropout: the inner norm's μ, times the pair's factor keep_ij / (1 − rate)
template <class Norm>
double magnitude(const magnitude_dropout<Norm>& n, const std::vector<double>& x) {
  return magnitude(n.norm, x);
}
template <class Norm>
bool includes_query(const magnitude_dropout<Norm>& n) {
  return includes_query(n.norm);
}
template <class Norm>
double pair_factor(const Norm&, const attention_shape&, index_t, index_t, index_t, index_t) {
  return 1.0;
}
template <class Norm>
double pair_factor(const magnitude_dropout<Norm>& n, const attention_shape& s, index_t b, index_t h, index_t i, index_t j) {
  return n.factor(s, b, h, i, j);
}
template <class T, class Norm>
void check_norm(const Norm& n, index_t dim) {
  if constexpr (detail::is_magnitude_dropout<Norm>) {
    n.check();
    (void)n.norm.template bind<T>(dim);
  } else {
    (void)n.template bind<T>(dim);
  }
}

// ---- the engine -----------------------------------------------------------------------------

template <class T>
std::vector<double> read_row(const tensor_view<const T>& t, index_t b, index_t h, index_t l) {
  const T* r = t.row(b, h, l);
  return std::vector<double>(r, r + t.cols);
}

// Same contract as ika::attention; computes in double, writes T. If `weights` is given it
// receives the attention matrix a_ij, (B, Hq, Lq, Lk) contiguous, for inspection.
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void attention(tensor_view<Q> q_in, tensor_view<K> k_in, tensor_view<V> v_in, tensor_view<T> out,
               const logit_expression<Kernel, Norm, Masks...>& logit,
               const std::type_identity_t<attention_options<T>>& options = {}, std::vector<double>* weights = nullptr) {
  static_assert(!std::is_same_v<Kernel, no_kernel>, "ika::reference::attention: the logit needs a log_kernel(...) term");
  detail::check_value_types<Q, K, V, T>();
  const tensor_view<const T> q = q_in, k = k_in, v = v_in;
  const attention_shape s = detail::check_attention_args<Heads>(q, k, v, out, options);
  // binding validates the parameters exactly as the fused engine does
  (void)logit.kernel.template bind<T>(s.q_heads, s.qk_dim);
  check_norm<T>(logit.norm, s.qk_dim);
  const auto masks = std::apply([&](const auto&... m) { return std::make_tuple(m.bind(s)...); }, logit.masks);
  if (weights) weights->assign(std::size_t(s.batch * s.q_heads * s.q_len * s.k_len), 0.0);

  const double minus_inf = -std::numeric_limits<double>::infinity();
  std::vector<double> logits(std::size_t(s.k_len));
  for (index_t b = 0; b < s.batch; ++b)
    for (index_t h = 0; h < s.q_heads; ++h) {
      const index_t hk = Heads::kv_head(h, s.q_heads, s.kv_heads);
      std::vector<std::vector<double>> keys(std::size_t(s.k_len));
      std::vector<double> key_magnitude(std::size_t(s.k_len));
      for (index_t j = 0; j < s.k_len; ++j) {
        auto x = read_row(k, b, hk, j);
        key_magnitude[j] = magnitude(logit.norm, x);
        keys[j] = prepared(logit.kernel, h, std::move(x));
      }
      for (index_t i = 0; i < s.q_len; ++i) {
        auto x = read_row(q, b, h, i);
        const double query_magnitude = includes_query(logit.norm) ? magnitude(logit.norm, x) : 0.0;
        const auto qi = prepared(logit.kernel, h, std::move(x));
        double row_max = minus_inf;
        for (index_t j = 0; j < s.k_len; ++j) {
          double bias = 0;
          std::apply([&](const auto&... m) { ((bias += m.bias(b, h, i, j)), ...); }, masks);
          logits[j] = bias == minus_inf ? minus_inf
                                        : log_kernel(logit.kernel, qi, keys[j]) +
                                              pair_factor(logit.norm, s, b, h, i, j) * (key_magnitude[j] + query_magnitude) +
                                              bias;
          row_max = std::max(row_max, logits[j]);
        }
        T* o = out.row(b, h, i);
        if (row_max == minus_inf) { // fully masked: zeros, lse = −inf
          std::fill(o, o + s.v_dim, T(0));
          if (!options.lse.empty()) options.lse(b, h, i) = -std::numeric_limits<T>::infinity();
          continue;
        }
        double sum = 0;
        std::vector<double> acc(std::size_t(s.v_dim), 0.0);
        for (index_t j = 0; j < s.k_len; ++j) {
          const double p = std::exp(logits[j] - row_max);
          logits[j] = p;
          sum += p;
          const T* vj = v.row(b, hk, j);
          for (index_t d = 0; d < s.v_dim; ++d) acc[d] += p * double(vj[d]);
        }
        for (index_t d = 0; d < s.v_dim; ++d) o[d] = T(acc[d] / sum);
        if (!options.lse.empty()) options.lse(b, h, i) = T(row_max + std::log(sum));
        if (weights)
          for (index_t j = 0; j < s.k_len; ++j)
            (*weights)[std::size_t(((b * s.q_heads + h) * s.q_len + i) * s.k_len + j)] = logits[j] / sum;
      }
    }
}

} // namespace ika::reference
