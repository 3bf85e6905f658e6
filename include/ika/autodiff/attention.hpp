// SPDX-License-Identifier: MIT
#pragma once

// Attention as one tape node: the forward is ika::attention (saving the row log-sum-exp), the
// backward is the fused ika::attention_backward. Tensors are (B, H, L, D) contiguous.
//
// Parameters that live inside the logit expression (spectral points, an additive bias, the norm's
// p) are plain views there; to train them, pass the variables that hold those values in
// attention_inputs. The node checks that the expression reads exactly those values.

#include <array>
#include <cmath>
#include <type_traits>
#include <utility>

#include "ika/autodiff/tape.hpp"
#include "ika/cpu/attention.hpp"
#include "ika/cpu/fused_backward.hpp"

namespace ika::ad {

// The variables behind the expression's parameters; each one is optional.
template <class T>
struct attention_inputs {
  std::array<variable<T>, 2> spectral{}; // the kernel's spectral points (Ω; or W₁, W₂), shape (heads, D, M)
  variable<T> bias{};                    // the first additive_bias mask's values, contiguous, its sizes
  variable<T> p{};                       // one element equal to the lp norm's p (a learnable p)
};

namespace detail {

template <class T, class Kernel, class Norm, class... Masks>
void check_attention_inputs(const logit_expression<Kernel, Norm, Masks...>& logit, const attention_inputs<T>& in) {
  using ika::detail::require;
  for (std::size_t t = 0; t < 2; ++t) {
    const variable<T>& w = in.spectral[t];
    if (!w.defined()) continue;
    if constexpr (requires { ika::detail::spectral_points(logit.kernel); }) {
      const auto points = ika::detail::spectral_points(logit.kernel)[t];
      require(static_cast<const void*>(points.data) == static_cast<const void*>(w.value().data()) &&
                  w.shape() == shape{points.heads, points.dim, points.count} &&
                  points.head_stride == points.dim * points.count && points.dim_stride == points.count &&
                  points.count_stride == 1,
              "inputs.spectral", "the variable whose values the kernel's spectral view ", t,
              " reads, contiguous (heads, D, M)");
    } else {
      require(false, "inputs.spectral", "undefined variables: this kernel has no spectral points");
    }
  }
  if (in.bias.defined()) {
    constexpr int index = ika::detail::first_additive_bias<Masks...>();
    if constexpr (index >= 0) {
      const auto& values = std::get<index>(logit.masks).values;
      require(static_cast<const void*>(values.data) == static_cast<const void*>(in.bias.value().data()) &&
                  in.bias.shape().padded() == values.sizes && dense(values.data, values.sizes[0], values.sizes[1],
                                                                      values.sizes[2], values.sizes[3])
                                                                    .strides == values.strides,
              "inputs.bias", "the variable whose values the additive_bias reads, contiguous, of its sizes");
    } else {
      require(false, "inputs.bias", "an undefined variable: the expression has no additive_bias mask");
    }
  }
  if (in.p.defined()) {
    if constexpr (std::is_same_v<Norm, lp>)
      require(in.p.size() == 1 && double(in.p.value()[0]) == double(T(logit.norm.p)), "inputs.p",
              "one element equal to the norm's p = ", logit.norm.p);
    else if constexpr (std::is_same_v<Norm, magnitude_dropout<lp>>)
      require(in.p.size() == 1 && double(in.p.value()[0]) == double(T(logit.norm.norm.p)), "inputs.p",
              "one element equal to the norm's p = ", logit.norm.norm.p);
    else
      require(false, "inputs.p", "an undefined variable: only the lp norm has an exponent p");
  }
}

} // namespace detail

// Where the node's forward and backward run: the fused CPU engines. Another engine (such as
// ika::cuda::attention_engine, include/ika/cuda/autodiff.cuh) has the same two functions over
// the tape's host tensors.
struct cpu_attention_engine {
  static constexpr bool magnitude_dropout = true; // takes ika::magnitude_dropout norms
  template <class Heads, class T, class Logit>
  static void forward(tensor_view<const T> q, tensor_view<const T> k, tensor_view<const T> v, tensor_view<T> out,
                      row_stat_view<T> lse, const Logit& logit) {
    ika::attention<Heads>(q, k, v, out, logit, {.lse = lse});
  }
  template <class Heads, class T, class Logit>
  static void backward(tensor_view<const T> q, tensor_view<const T> k, tensor_view<const T> v,
                       tensor_view<const T> out, row_stat_view<const T> lse, tensor_view<const T> d_out,
                       const Logit& logit, const attention_grads<T>& grads) {
    ika::attention_backward<Heads>(q, k, v, out, lse, d_out, logit, grads);
  }
};

// y = attention(q, k, v; logit). The tape keeps a copy of the expression for the backward; the
// data its views read (masks, spectral points) must stay unchanged until tape.backward().
template <class Heads = grouped_heads, class Engine = cpu_attention_engine, class T, class Kernel, class Norm,
          class... Masks>
variable<T> attention(tape<T>& tp, const variable<T>& q, const variable<T>& k, const variable<T>& v,
                      const logit_expression<Kernel, Norm, Masks...>& logit, const attention_inputs<T>& inputs = {}) {
  auto rank4 = [](const variable<T>& x, const char* name) {
    ika::detail::require(x.defined() && x.shape().rank() == 4, name, "a (B, H, L, D) tensor, got ",
                         x.defined() ? x.shape().str() : std::string("an undefined variable"));
  };
  rank4(q, "q");
  rank4(k, "k");
  rank4(v, "v");
  detail::check_attention_inputs(logit, inputs);
  const auto& qs = q.shape();
  const auto& ks = k.shape();
  const auto& vs = v.shape();
  const index_t B = qs[0], Hq = qs[1], Lq = qs[2], D = qs[3], Hkv = ks[1], Lk = ks[2], Dv = vs[3];
  const variable<T>* params[4] = {&inputs.spectral[0], &inputs.spectral[1], &inputs.bias, &inputs.p};
  bool grad = tape<T>::needs_grad(q, k, v);
  for (const variable<T>* x : params) grad = grad || (x->defined() && tape<T>::needs_grad(*x));
  variable<T> y = tp.make_result(shape{B, Hq, Lq, Dv}, grad);
  tensor<T>& lse = tp.saved(shape{B, Hq, Lq});
  const auto view = [](const variable<T>& x, index_t b, index_t h, index_t l, index_t d) {
    return tensor_view<const T>(bhld(x.value().data(), b, h, l, d));
  };
  Engine::template forward<Heads>(view(q, B, Hq, Lq, D), view(k, ks[0], Hkv, Lk, ks[3]),
                                  view(v, vs[0], vs[1], vs[2], Dv), bhld(y.value().data(), B, Hq, Lq, Dv),
                                  bhl(lse.data(), B, Hq, Lq), logit);
  if (!grad) return y;
  // one scratch tensor for every gradient: dq | dk | dv | dΩ₀ | dΩ₁ | dbias | dp
  auto size_of = [](const variable<T>& x) { return x.defined() ? x.size() : index_t(0); };
  const index_t scratch_size = q.size() + k.size() + v.size() + size_of(inputs.spectral[0]) +
                               size_of(inputs.spectral[1]) + size_of(inputs.bias) + size_of(inputs.p);
  tensor<T>* scratch = &tp.saved(shape{scratch_size});
  tensor<T>* saved_lse = &lse;
  auto impl_of = [](const variable<T>* x) { return x->defined() ? x->impl() : nullptr; };
  auto *pq = q.impl(), *pk = k.impl(), *pv = v.impl(), *py = y.impl();
  auto *ps0 = impl_of(params[0]), *ps1 = impl_of(params[1]), *pb = impl_of(params[2]), *pp = impl_of(params[3]);
  const auto* expr = &tp.keep(logit);
  tp.record("attention", y, {q, k, v}, [pq, pk, pv, py, ps0, ps1, pb, pp, saved_lse, scratch, expr] {
    const auto& qs = pq->value.shape();
    const auto& ks = pk->value.shape();
    const auto& vs = pv->value.shape();
    const index_t B = qs[0], Hq = qs[1], Lq = qs[2], D = qs[3], Hkv = ks[1], Lk = ks[2], Dv = vs[3];
    const tensor_view<const T> out = bhld(static_cast<const T*>(py->value.data()), B, Hq, Lq, Dv);
    const tensor_view<const T> d_out = bhld(static_cast<const T*>(py->grad.data()), B, Hq, Lq, Dv);
    const row_stat_view<const T> lse_view{saved_lse->data(), B, Hq, Lq, Hq * Lq, Lq, 1};
    T* cursor = scratch->data();
    auto take = [&cursor](index_t n) { return std::exchange(cursor, cursor + n); };
    T* dq = take(pq->value.size());
    T* dk = take(pk->value.size());
    T* dv = take(pv->value.size());
    attention_grads<T> grads{bhld(dq, B, Hq, Lq, D), bhld(dk, B, Hkv, Lk, D), bhld(dv, B, Hkv, Lk, Dv)};
    ika::detail::ad_var<T>* spectral[2] = {ps0, ps1};
    T* dspectral[2] = {nullptr, nullptr};
    for (int t = 0; t < 2; ++t)
      if (spectral[t] && spectral[t]->requires_grad) {
        const auto& s = spectral[t]->value.shape();
        dspectral[t] = take(spectral[t]->value.size());
        grads.dspectral[std::size_t(t)] = ika::spectral(dspectral[t], s[0], s[1], s[2]);
      }
    T* dbias = nullptr;
    if (pb && pb->requires_grad) {
      const auto d = pb->value.shape().padded();
      dbias = take(pb->value.size());
      grads.dbias = dense(dbias, d[0], d[1], d[2], d[3]);
    }
    if (pp && pp->requires_grad) grads.dp = take(1);
    Engine::template backward<Heads>(tensor_view<const T>(bhld(pq->value.data(), B, Hq, Lq, D)),
                                     tensor_view<const T>(bhld(pk->value.data(), B, Hkv, Lk, D)),
                                     tensor_view<const T>(bhld(pv->value.data(), B, Hkv, Lk, Dv)), out, lse_view,
                                     d_out, *expr, grads);
    auto accumulate = [](ika::detail::ad_var<T>* p, const T* g) {
      if (p && p->requires_grad && g)
        for (index_t i = 0; i < p->grad.size(); ++i) p->grad[i] += g[i];
    };
    accumulate(pq, dq);
    accumulate(pk, dk);
    accumulate(pv, dv);
    accumulate(ps0, dspectral[0]);
    accumulate(ps1, dspectral[1]);
    accumulate(pb, dbias);
    accumulate(pp, grads.dp);
  });
  for (const variable<T>* x : params)
    if (x->defined()) tp.link(*x); // kept alive with the node's inputs until reset()
  return y;
}

} // namespace ika::ad
