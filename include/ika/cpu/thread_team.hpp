// SPDX-License-Identifier: MIT
#pragma once

// How many threads a CPU engine's call runs on, and how it opens them. The engines' results do not
// depend on the team size (fixed partitions, fixed reduction orders), so it is free to choose.

#include <algorithm>
#include <utility>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "ika/core/tensor_view.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika::detail {

// Multiply-adds of work per thread of an automatic team. On this project's 2-core VM a two-thread
// region costs 2-4 µs at some times and 8-15 µs at others, so where two threads start to win moves
// from 0.2 to 6 million multiply-adds with the engine and the time; over a sweep of small calls of
// every engine, one thread per 2^20 came within 1-8 % of the better team on average (geometric
// mean per sweep), where always taking both threads lost 21-57 % (bench/results/blocking/auto_team/).
inline constexpr double work_per_thread = double(1 << 20);

// The team of a call of about `work` multiply-adds shared out as `tasks` tasks: the caller's thread
// count, or for threads = 0 one thread per work_per_thread, at least one and at most OpenMP's
// default and the number of tasks.
inline int thread_team(int threads, double work, index_t tasks) {
  if (threads > 0) return threads;
#if defined(_OPENMP)
  const double most = std::min(double(omp_get_max_threads()), double(tasks));
  return int(std::max(1.0, std::min(work / work_per_thread, most)));
#else
  (void)work, (void)tasks;
  return 1;
#endif
}

// The multiply-adds of mapping one query or key row of dimension D to its F features: a
// projection for the random-feature kernels, about D for kernels whose features are the row.
template <class Bound>
double feature_row_work(index_t features, index_t dim) {
  if constexpr (key_features_are_rows<Bound>) return double(dim);
  else return double(features) * double(dim);
}

// The multiply-adds of an attention call: each query-key pair's score over F features and its
// share of the Dv values (pair_passes times: 2.5 for a backward, the convention of bench/), and
// the feature map of every query row and of `mapped_key_rows` key rows.
template <class Bound>
double attention_work(const attention_shape& s, index_t features, index_t mapped_key_rows, double pair_passes = 1) {
  const double pairs = double(s.batch) * double(s.q_heads) * double(s.q_len) * double(s.k_len);
  const double rows = double(s.batch) * double(s.q_heads) * double(s.q_len) + double(mapped_key_rows);
  return pair_passes * pairs * double(features + s.v_dim) + rows * feature_row_work<Bound>(features, s.qk_dim);
}

// body() on a team of `team` threads; its worksharing loops are orphaned constructs, so they bind
// to this team. A team of one outside any parallel region runs body() as a plain call: libgomp
// ends each worksharing loop of a one-thread team with a barrier whose wake-up is a futex system
// call, about 1 µs each here (bench/results/blocking/serial_team/), and loops outside a region need
// none. Inside a caller's region the loops would bind to the caller's team instead, so that case
// keeps a region of its own.
template <class Body>
void run_in_team([[maybe_unused]] int team, Body&& body) {
#if defined(_OPENMP)
  if (team > 1 || omp_get_level() > 0) {
#pragma omp parallel num_threads(team)
    body();
    return;
  }
#endif
  body();
}

// This thread's share [first, last) of `count` tasks dealt out in contiguous ranges, one per member
// of the current team, of about equal work: work_before[i] is the work of tasks [0, i) (count + 1
// entries, non-decreasing). A thread then walks its own stretch of memory in order, which the
// hardware prefetchers follow, where a dynamic schedule interleaves the threads' tasks.
inline std::pair<index_t, index_t> balanced_share(const double* work_before, index_t count) {
  int member = 0, members = 1;
#if defined(_OPENMP)
  member = omp_get_thread_num();
  members = omp_get_num_threads();
#endif
  const auto boundary = [&](int m) {
    if (m >= members) return count;
    const double goal = work_before[count] * double(m) / double(members);
    return index_t(std::lower_bound(work_before, work_before + count, goal) - work_before);
  };
  return {boundary(member), boundary(member + 1)};
}

} // namespace ika::detail
