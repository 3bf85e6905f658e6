// SPDX-License-Identifier: MIT
#pragma once

// The parameter registry of ika::nn modules. Every module follows one convention:
//
//   using value_type = T;
//   void collect(parameter_list<T>& out, const std::string& prefix) const;  // appends prefix + "weight", …
//   void train(bool on);                                                     // training / evaluation mode
//   ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x);   // the forward
//
// Sub-modules collect under prefix + "<member>." so names read like PyTorch's state_dict keys
// ("ff.linear1.weight"). Parameters are ad::variable handles: a copy of a module shares its
// parameters with the original (as the optimisers, which hold handles too, rely on).

#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ika/autodiff/tape.hpp"
#include "ika/autodiff/tensor.hpp"

namespace ika::nn {

template <class T>
struct named_parameter {
  std::string name;
  ad::variable<T> value;
};

template <class T>
using parameter_list = std::vector<named_parameter<T>>;

// The handles alone, in order, for the optimisers (sgd, adam) and clip_grad_norm.
template <class T>
std::vector<ad::variable<T>> variables(const parameter_list<T>& params) {
  std::vector<ad::variable<T>> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.value);
  return out;
}

// Zeroes every parameter's gradient (before a backward pass: leaves accumulate).
template <class T>
void zero_grad(const parameter_list<T>& params) {
  for (const auto& p : params) ad::variable<T>(p.value).zero_grad(); // a handle: shares the storage
}

// A leaf that requires grad, element i (row-major) set to init(i).
template <class T, class Init>
  requires std::is_invocable_v<Init&, index_t>
ad::variable<T> make_parameter(const ad::shape& s, Init&& init) {
  ad::tensor<T> t(s);
  for (index_t i = 0; i < t.size(); ++i) t[i] = T(init(i));
  return ad::variable<T>(std::move(t), true);
}

// What a module exposes to the registry.
template <class M>
concept module_like = requires(const M& m, parameter_list<typename M::value_type>& out, const std::string& prefix) {
  typename M::value_type;
  m.collect(out, prefix);
};

// Every parameter of a module, named from `prefix`.
template <module_like M>
parameter_list<typename M::value_type> parameters(const M& m, const std::string& prefix = "") {
  parameter_list<typename M::value_type> out;
  m.collect(out, prefix);
  return out;
}

// A seed for sub-module k of a module seeded with `seed` (splitmix64 of both), so sub-modules draw
// from unrelated counter_rng keys while the whole stays a function of one seed.
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t k) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (k + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

} // namespace ika::nn
