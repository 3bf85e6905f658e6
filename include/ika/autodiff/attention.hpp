// SPDX-License-Identifier: MIT
#pragma once

// Attention as one tape node: the forward is ika::attention (saving the row log-sum-exp), the
// backward is the fused ika::attention_backward. Tensors are (B, H, L, D) contiguous.

#include "ika/autodiff/tape.hpp"
#include "ika/cpu/attention.hpp"
#include "ika/cpu/fused_backward.hpp"

namespace ika::ad {

// y = attention(q, k, v; logit). The logit expression is read again by the backward, so it must
// outlive tape.backward() (keep it where the parameters live, e.g. in the module).
template <class T, class Kernel, class Norm, class... Masks>
variable<T> attention(tape<T>& tp, const variable<T>& q, const variable<T>& k, const variable<T>& v,
                      const logit_expression<Kernel, Norm, Masks...>& logit) {
  auto rank4 = [](const variable<T>& x, const char* name) {
    ika::detail::require(x.defined() && x.shape().rank() == 4, name, "a (B, H, L, D) tensor, got ",
                         x.defined() ? x.shape().str() : std::string("an undefined variable"));
  };
  rank4(q, "q");
  rank4(k, "k");
  rank4(v, "v");
  const auto& qs = q.shape();
  const auto& ks = k.shape();
  const auto& vs = v.shape();
  const index_t B = qs[0], Hq = qs[1], Lq = qs[2], D = qs[3], Hkv = ks[1], Lk = ks[2], Dv = vs[3];
  const bool grad = tape<T>::needs_grad(q, k, v);
  variable<T> y = tp.make_result(shape{B, Hq, Lq, Dv}, grad);
  tensor<T>& lse = tp.saved(shape{B, Hq, Lq});
  ika::attention(bhld(q.value().data(), B, Hq, Lq, D), bhld(k.value().data(), ks[0], Hkv, Lk, ks[3]),
                 bhld(v.value().data(), vs[0], vs[1], vs[2], Dv), bhld(y.value().data(), B, Hq, Lq, Dv), logit,
                 {.lse = bhl(lse.data(), B, Hq, Lq)});
  if (grad) {
    tensor<T>* saved_lse = &lse;
    tensor<T>* dq = &tp.saved(qs);
    tensor<T>* dk = &tp.saved(ks);
    tensor<T>* dv = &tp.saved(vs);
    auto *pq = q.impl(), *pk = k.impl(), *pv = v.impl(), *py = y.impl();
    const auto* expr = &logit;
    tp.record("attention", y, {q, k, v}, [pq, pk, pv, py, saved_lse, dq, dk, dv, expr] {
      const auto& qs = pq->value.shape();
      const auto& ks = pk->value.shape();
      const auto& vs = pv->value.shape();
      const index_t B = qs[0], Hq = qs[1], Lq = qs[2], D = qs[3], Hkv = ks[1], Lk = ks[2], Dv = vs[3];
      const tensor_view<const T> out = bhld(static_cast<const T*>(py->value.data()), B, Hq, Lq, Dv);
      const tensor_view<const T> d_out = bhld(static_cast<const T*>(py->grad.data()), B, Hq, Lq, Dv);
      const row_stat_view<const T> lse_view{saved_lse->data(), B, Hq, Lq, Hq * Lq, Lq, 1};
      ika::attention_backward(bhld(pq->value.data(), B, Hq, Lq, D), bhld(pk->value.data(), B, Hkv, Lk, D),
                              bhld(pv->value.data(), B, Hkv, Lk, Dv), out, lse_view, d_out, *expr,
                              attention_grads<T>{bhld(dq->data(), B, Hq, Lq, D), bhld(dk->data(), B, Hkv, Lk, D),
                                                 bhld(dv->data(), B, Hkv, Lk, Dv)});
      for (auto [p, g] : {std::pair{pq, dq}, std::pair{pk, dk}, std::pair{pv, dv}})
        if (p->requires_grad)
          for (index_t i = 0; i < g->size(); ++i) p->grad[i] += (*g)[i];
    });
  }
  return y;
}

} // namespace ika::ad
