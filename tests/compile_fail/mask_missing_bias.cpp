// SPDX-License-Identifier: MIT
// A bound mask without bias(...).
// expect-error: ika mask policy: bound mask lacks hook 'bias(b, h, i, j) -> double'
#include "common.hpp"

#include <limits>

// A user-written mask: every query sees the first n keys only.
struct first_keys {
  ika::index_t n;

  struct bound {
    ika::index_t n;

    ika::tile_state tile(ika::index_t, ika::index_t, ika::index_t, ika::index_t, ika::index_t j0, ika::index_t j1) const {
      if (j0 >= n) return ika::tile_state::empty;
      return j1 <= n ? ika::tile_state::full : ika::tile_state::partial;
    }
    template <class T>
    void apply(ika::index_t, ika::index_t, ika::index_t, ika::index_t j0, ika::index_t count, T* logits) const {
      for (ika::index_t j = 0; j < count; ++j)
        if (j0 + j >= n) logits[j] = -std::numeric_limits<T>::infinity();
    }
#ifdef IKA_COMPILE_FAIL_FIXED
    double bias(ika::index_t, ika::index_t, ika::index_t, ika::index_t j) const {
      return j < n ? 0.0 : -std::numeric_limits<double>::infinity();
    }
#endif
  };

  bound bind(const ika::attention_shape&) const { return {n}; }
};

int main() { compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::mask(first_keys{3})); }
