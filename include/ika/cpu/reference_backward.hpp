// SPDX-License-Identifier: MIT
#pragma once

// The reference backward: gradients of Σ_i d_out_i · o_i with respect to q, k, v, the spectral
// points and additive biases, in double precision, materialising each row of attention weights.
// It is the oracle the fused backward will be tested against, and is itself tested by central
// finite differences.
//
// With a_ij the attention weights and ℓ_ij the logits:
//   dv_j  = Σ_i a_ij do_i
//   dℓ_ij = a_ij (do_i·v_j − do_i·o_i)
// and dℓ flows into log κ(q_i, k_j), μ(k_j) (and μ(q_i)), and the additive bias.

#include <cmath>
#include <numbers>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ika/cpu/reference.hpp"
#include "ika/masks/dense.hpp"

namespace ika::reference {

struct attention_gradients {
  std::vector<double> dq, dk, dv;             // contiguous (B, Hq, Lq, D), (B, Hkv, Lk, D), (B, Hkv, Lk, Dv)
  std::vector<std::vector<double>> dspectral; // per spectral tensor of the kernel (Ω; or W₁, W₂), contiguous (heads, D, M)
  std::vector<std::vector<double>> dbias;     // per additive_bias mask, in expression order, contiguous in its own sizes
  double dp = 0;                              // d/dp of the lp norm's exponent (finite p)
};

namespace detail_backward {

inline double sign(double x) { return double(x > 0) - double(x < 0); }

// ---- d log κ / d(prepared rows) for the explicit kernels -------------------------------------

inline void log_kernel_grad(const rbf& k, const std::vector<double>& q, const std::vector<double>& x, double g,
                            double* dq, double* dx) {
  const double s2 = k.resolved_bandwidth_sq(index_t(q.size()));
  for (std::size_t d = 0; d < q.size(); ++d) {
    const double diff = (q[d] - x[d]) / s2;
    dq[d] -= g * diff;
    dx[d] += g * diff;
  }
}
inline void log_kernel_grad(const dot_product& k, const std::vector<double>& q, const std::vector<double>& x, double g,
                            double* dq, double* dx) {
  const double scale = k.resolved_scale(index_t(q.size()));
  for (std::size_t d = 0; d < q.size(); ++d) {
    dq[d] += g * scale * x[d];
    dx[d] += g * scale * q[d];
  }
}
inline void log_kernel_grad(const laplacian& k, const std::vector<double>& q, const std::vector<double>& x, double g,
                            double* dq, double* dx) {
  const double sigma = k.resolved_bandwidth(index_t(q.size()));
  for (std::size_t d = 0; d < q.size(); ++d) {
    const double s = sign(q[d] - x[d]) / sigma;
    dq[d] -= g * s;
    dx[d] += g * s;
  }
}

// Feature kernels: log κ = log(k̂² + ε) or log(max(k̂, ε)), k̂ = φ_q·φ_k.
template <feature_kernel Kernel>
void log_kernel_grad(const Kernel& k, const std::vector<double>& phi_q, const std::vector<double>& phi_k, double g,
                     double* dphi_q, double* dphi_k) {
  double s = 0;
  for (std::size_t f = 0; f < phi_q.size(); ++f) s += phi_q[f] * phi_k[f];
  const double ds = k.estimate == rff_estimate::squared ? 2 * s / (s * s + k.epsilon) : (s > k.epsilon ? 1 / s : 0.0);
  for (std::size_t f = 0; f < phi_q.size(); ++f) {
    dphi_q[f] += g * ds * phi_k[f];
    dphi_k[f] += g * ds * phi_q[f];
  }
}

// ---- through the feature maps to the rows and the spectral points ----------------------------

// dφ → dx and dΩ for φ(x) = M^-½ [cos(Ωᵀx), sin(Ωᵀx)]
template <class S>
void feature_grad(const random_fourier<S>& k, index_t h, const std::vector<double>& x, const double* dphi, double* dx,
                  std::vector<std::vector<double>>& dspectral) {
  const auto& w = k.omega;
  const index_t hh = w.heads == 1 ? 0 : h, M = w.count, D = w.dim;
  const double scale = 1 / std::sqrt(double(M));
  for (index_t m = 0; m < M; ++m) {
    double z = 0;
    for (index_t d = 0; d < D; ++d) z += double(w(hh, d, m)) * x[d];
    const double dz = scale * (-std::sin(z) * dphi[m] + std::cos(z) * dphi[M + m]);
    for (index_t d = 0; d < D; ++d) {
      dx[d] += dz * double(w(hh, d, m));
      dspectral[0][std::size_t((hh * D + d) * M + m)] += dz * x[d];
    }
  }
}

// dφ → dx, dW₁, dW₂ for φ(x) = (4M)^-½ [cos a + cos b, sin a + sin b], a = 2πW₁ᵀx, b = 2πW₂ᵀx
template <class S>
void feature_grad(const yaglom_rff<S>& k, index_t h, const std::vector<double>& x, const double* dphi, double* dx,
                  std::vector<std::vector<double>>& dspectral) {
  const index_t hh = k.w1.heads == 1 ? 0 : h, M = k.w1.count, D = k.w1.dim;
  const double two_pi = 2 * std::numbers::pi, scale = 1 / std::sqrt(4.0 * double(M));
  const spectral_view<const S>* w[2] = {&k.w1, &k.w2};
  for (int which = 0; which < 2; ++which)
    for (index_t m = 0; m < M; ++m) {
      double z = 0;
      for (index_t d = 0; d < D; ++d) z += two_pi * double((*w[which])(hh, d, m)) * x[d];
      const double dz = scale * (-std::sin(z) * dphi[m] + std::cos(z) * dphi[M + m]);
      for (index_t d = 0; d < D; ++d) {
        dx[d] += dz * two_pi * double((*w[which])(hh, d, m));
        dspectral[std::size_t(which)][std::size_t((hh * D + d) * M + m)] += dz * two_pi * x[d];
      }
    }
}

template <class S>
std::vector<std::vector<double>> spectral_shapes(const random_fourier<S>& k) {
  return {std::vector<double>(std::size_t(k.omega.heads * k.omega.dim * k.omega.count), 0.0)};
}
template <class S>
std::vector<std::vector<double>> spectral_shapes(const yaglom_rff<S>& k) {
  const std::size_t n = std::size_t(k.w1.heads * k.w1.dim * k.w1.count);
  return {std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
}
template <class Kernel>
std::vector<std::vector<double>> spectral_shapes(const Kernel&) {
  return {};
}

// ---- d μ / d x -----------------------------------------------------------------------------

inline void magnitude_grad(const lp& n, const std::vector<double>& x, double g, double* dx) {
  if (g == 0) return;
  const double D = double(x.size());
  const double c = n.divisor == norm_divisor::paper ? 2 * std::sqrt(D) : 2 * std::pow(D, 0.25);
  const double r = n.exponent == norm_exponent::two ? 2.0 : n.p;
  if (std::isinf(n.p)) { // μ = max|x|^r / c: the subgradient at the first largest entry
    std::size_t arg = 0;
    for (std::size_t d = 1; d < x.size(); ++d)
      if (std::abs(x[d]) > std::abs(x[arg])) arg = d;
    dx[arg] += g * r / c * std::pow(std::abs(x[arg]), r - 1) * sign(x[arg]);
    return;
  }
  double s = 0;
  for (double v : x) s += std::pow(std::abs(v), n.p);
  if (s == 0) return; // the zero row: the gradient is 0 for r > 1 (taken as 0 for every r)
  // μ = s^(r/p) / c, ds/dx_d = p |x_d|^(p-1) sign(x_d)
  const double dmu_ds = r / n.p * std::pow(s, r / n.p - 1) / c;
  for (std::size_t d = 0; d < x.size(); ++d)
    if (x[d] != 0) dx[d] += g * dmu_ds * n.p * std::pow(std::abs(x[d]), n.p - 1) * sign(x[d]);
}
inline void magnitude_grad(const no_norm&, const std::vector<double>&, double, double*) {}

// ∂μ/∂p at finite p, differentiating μ = (Σ|x|^p)^(r/p) / c directly (r = p or r = 2)
inline double magnitude_p_grad(const lp& n, const std::vector<double>& x) {
  if (std::isinf(n.p)) return 0;
  const double D = double(x.size());
  const double c = n.divisor == norm_divisor::paper ? 2 * std::sqrt(D) : 2 * std::pow(D, 0.25);
  double s = 0, ds = 0; // s = Σ|x|^p, ds/dp = Σ|x|^p log|x|
  for (double v : x)
    if (v != 0) {
      s += std::pow(std::abs(v), n.p);
      ds += std::pow(std::abs(v), n.p) * std::log(std::abs(v));
    }
  if (s == 0) return 0;
  if (n.exponent == norm_exponent::p) return ds / c;
  // d/dp exp((2/p) log s) = s^(2/p) (−2/p² log s + (2/p) ds/s)
  return std::pow(s, 2 / n.p) * (-2 / (n.p * n.p) * std::log(s) + 2 / n.p * ds / s) / c;
}
inline double magnitude_p_grad(const no_norm&, const std::vector<double>&) { return 0; }
template <class Norm>
void magnitude_grad(const magnitude_dropout<Norm>& n, const std::vector<double>& x, double g, double* dx) {
  magnitude_grad(n.norm, x, g, dx);
}
template <class Norm>
double magnitude_p_grad(const magnitude_dropout<Norm>& n, const std::vector<double>& x) {
  return magnitude_p_grad(n.norm, x);
}

using ika::detail::is_additive_bias;

} // namespace detail_backward

// Gradients of Σ d_out ⊙ attention(q, k, v; logit). d_out has the shape of out.
template <class Heads = grouped_heads, class Q, class K, class V, class G, class Kernel, class Norm, class... Masks>
attention_gradients attention_backward(tensor_view<Q> q_in, tensor_view<K> k_in, tensor_view<V> v_in,
                                       tensor_view<G> d_out_in, const logit_expression<Kernel, Norm, Masks...>& logit) {
  using namespace detail_backward;
  using T = std::remove_const_t<Q>;
  const tensor_view<const T> q = q_in, k = k_in, v = v_in, d_out = d_out_in;
  // forward, also the shape and parameter checks
  std::vector<T> out_storage(std::size_t(q.batch * q.heads * q.rows * v.cols));
  const auto out = bhld(out_storage.data(), q.batch, q.heads, q.rows, v.cols);
  std::vector<double> weights;
  attention<Heads>(q, k, v, out, logit, {}, &weights);
  ika::detail::require(d_out.batch == q.batch && d_out.heads == q.heads && d_out.rows == q.rows && d_out.cols == v.cols,
                       "d_out", "the shape of out (", q.batch, ", ", q.heads, ", ", q.rows, ", ", v.cols, ")");
  const index_t B = q.batch, Hq = q.heads, Hkv = k.heads, Lq = q.rows, Lk = k.rows, D = q.cols, Dv = v.cols;
  const attention_shape shape{B, Hq, Hkv, Lq, Lk, D, Dv};

  attention_gradients grads;
  grads.dq.assign(std::size_t(B * Hq * Lq * D), 0.0);
  grads.dk.assign(std::size_t(B * Hkv * Lk * D), 0.0);
  grads.dv.assign(std::size_t(B * Hkv * Lk * Dv), 0.0);
  grads.dspectral = spectral_shapes(logit.kernel);
  std::apply(
      [&](const auto&... m) {
        (([&] {
           if constexpr (is_additive_bias<std::remove_cvref_t<decltype(m)>>) {
             const auto& s = m.values.sizes;
             grads.dbias.emplace_back(std::size_t(s[0] * s[1] * s[2] * s[3]), 0.0);
           }
         }()),
         ...);
      },
      logit.masks);

  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < Hq; ++h) {
      const index_t hk = Heads::kv_head(h, Hq, Hkv);
      std::vector<std::vector<double>> keys(static_cast<std::size_t>(Lk)), key_rows(static_cast<std::size_t>(Lk));
      for (index_t j = 0; j < Lk; ++j) {
        key_rows[j] = read_row(k, b, hk, j);
        keys[j] = prepared(logit.kernel, h, key_rows[j]);
      }
      // gradients w.r.t. the prepared key rows, the key magnitudes
      std::vector<std::vector<double>> dkeys(static_cast<std::size_t>(Lk), std::vector<double>(keys.empty() ? 0 : keys[0].size()));
      std::vector<double> dkey_magnitude(static_cast<std::size_t>(Lk), 0.0);
      for (index_t i = 0; i < Lq; ++i) {
        const auto q_row = read_row(q, b, h, i);
        const auto qi = prepared(logit.kernel, h, q_row);
        std::vector<double> dqi(qi.size(), 0.0);
        const double* a = weights.data() + ((b * Hq + h) * Lq + i) * Lk;
        const T* o = out.row(b, h, i);
        const T* g = d_out.row(b, h, i);
        double row_dot = 0; // do_i · o_i
        for (index_t d = 0; d < Dv; ++d) row_dot += double(g[d]) * double(o[d]);
        double dquery_magnitude = 0;
        for (index_t j = 0; j < Lk; ++j) {
          if (a[j] == 0) continue; // hidden (or underflowed): no gradient through this pair
          const T* vj = v.row(b, hk, j);
          double dp = 0;
          for (index_t d = 0; d < Dv; ++d) {
            dp += double(g[d]) * double(vj[d]);
            grads.dv[std::size_t(((b * Hkv + hk) * Lk + j) * Dv + d)] += a[j] * double(g[d]);
          }
          const double dlogit = a[j] * (dp - row_dot);
          log_kernel_grad(logit.kernel, qi, keys[j], dlogit, dqi.data(), dkeys[j].data());
          const double factor = pair_factor(logit.norm, shape, b, h, i, j); // magnitude dropout, else 1
          dkey_magnitude[j] += dlogit * factor;
          dquery_magnitude += dlogit * factor;
          std::size_t bias_index = 0;
          std::apply(
              [&](const auto&... m) {
                (([&] {
                   if constexpr (is_additive_bias<std::remove_cvref_t<decltype(m)>>) {
                     const auto& s = m.values.sizes;
                     const index_t bb = s[0] == 1 ? 0 : b, hh = s[1] == 1 ? 0 : h, ii = s[2] == 1 ? 0 : i,
                                   jj = s[3] == 1 ? 0 : j;
                     grads.dbias[bias_index++][std::size_t(((bb * s[1] + hh) * s[2] + ii) * s[3] + jj)] += dlogit;
                   }
                 }()),
                 ...);
              },
              logit.masks);
        }
        double* dq = grads.dq.data() + ((b * Hq + h) * Lq + i) * D;
        if constexpr (feature_kernel<Kernel>) feature_grad(logit.kernel, h, q_row, dqi.data(), dq, grads.dspectral);
        else
          for (index_t d = 0; d < D; ++d) dq[d] += dqi[d];
        if (includes_query(logit.norm)) {
          magnitude_grad(logit.norm, q_row, dquery_magnitude, dq);
          grads.dp += dquery_magnitude * magnitude_p_grad(logit.norm, q_row);
        }
      }
      for (index_t j = 0; j < Lk; ++j) {
        double* dk = grads.dk.data() + ((b * Hkv + hk) * Lk + j) * D;
        if constexpr (feature_kernel<Kernel>) feature_grad(logit.kernel, h, key_rows[j], dkeys[j].data(), dk, grads.dspectral);
        else
          for (index_t d = 0; d < D; ++d) dk[d] += dkeys[j][d];
        magnitude_grad(logit.norm, key_rows[j], dkey_magnitude[j], dk);
        grads.dp += dkey_magnitude[j] * magnitude_p_grad(logit.norm, key_rows[j]);
      }
    }
  return grads;
}

} // namespace ika::reference
