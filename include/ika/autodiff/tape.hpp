// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "ika/autodiff/tensor.hpp"
#include "ika/core/error.hpp"

namespace ika::detail {
// Grad mode, per thread; ad::no_grad switches it off for a scope.
inline bool& ad_grad_mode() {
  thread_local bool enabled = true;
  return enabled;
}

// What an ad::variable handle points to: the value, its gradient (same shape, allocated when the
// variable requires grad), and the index of the node that produced it on its tape (-1 for leaves).
template <class T>
struct ad_var {
  ad::tensor<T> value;
  ad::tensor<T> grad;
  bool requires_grad = false;
  std::ptrdiff_t producer = -1;
};
} // namespace ika::detail

namespace ika::ad {

// Whether operations on the calling thread record nodes.
inline bool grad_enabled() { return detail::ad_grad_mode(); }

// While alive, operations on this thread compute values only: nothing is recorded on any tape and
// results do not require grad. Scopes nest.
class no_grad {
public:
  no_grad() : previous_(detail::ad_grad_mode()) { detail::ad_grad_mode() = false; }
  ~no_grad() { detail::ad_grad_mode() = previous_; }
  no_grad(const no_grad&) = delete;
  no_grad& operator=(const no_grad&) = delete;

private:
  bool previous_;
};

template <class T>
class tape;

// A shared handle to a value and its gradient. Copies refer to the same storage.
// Leaves (parameters, inputs) are made by the constructor and live as long as a handle does; their
// gradients accumulate over backward passes until zero_grad(). Results of operations are stored by
// the tape and are valid until its next reset(), which reuses their storage.
template <class T>
class variable {
public:
  using value_type = T;

  variable() = default;
  explicit variable(tensor<T> value, bool requires_grad = false) : impl_(std::make_shared<detail::ad_var<T>>()) {
    impl_->value = std::move(value);
    set_requires_grad(requires_grad);
  }

  bool defined() const { return impl_ != nullptr; }
  const tensor<T>& value() const { return impl_->value; }
  tensor<T>& value() { return impl_->value; } // a leaf's value may be updated in place (optimiser steps)
  const tensor<T>& grad() const { return impl_->grad; }
  tensor<T>& grad() { return impl_->grad; }
  const ad::shape& shape() const { return impl_->value.shape(); }
  index_t size() const { return impl_->value.size(); }
  bool requires_grad() const { return impl_->requires_grad; }

  void set_requires_grad(bool on) {
    impl_->requires_grad = on;
    if (on && impl_->grad.shape() != impl_->value.shape()) {
      impl_->grad.resize(impl_->value.shape());
      impl_->grad.fill(T(0));
    }
  }
  void zero_grad() {
    if (impl_->requires_grad) impl_->grad.fill(T(0));
  }

  detail::ad_var<T>* impl() const { return impl_.get(); }
  const std::shared_ptr<detail::ad_var<T>>& shared() const { return impl_; }

private:
  friend class tape<T>;
  explicit variable(std::shared_ptr<detail::ad_var<T>> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::ad_var<T>> impl_;
};

// Records one node per tensor operation: its inputs, its output and a backward closure that adds
// the output's gradient, pulled back, into the inputs' gradients. backward() runs the nodes in
// reverse. reset() forgets the nodes but keeps every buffer: the node list, and the storage of
// results and saved tensors, handed out again in the same order, so a training loop that records
// the same graph each step allocates nothing after the first step.
//
// An operation is a free function that computes its output with make_result() and, when
// needs_grad(inputs...) holds, calls record() with a closure. See ops.hpp for examples.
template <class T>
class tape {
public:
  using value_type = T;
  using impl_type = detail::ad_var<T>;
  // Bytes a backward closure may capture (pointers to var_impl and a few scalars).
  static constexpr std::size_t closure_capacity = 112;

  tape() = default;
  tape(const tape&) = delete;
  tape& operator=(const tape&) = delete;

  // --- for operations --------------------------------------------------------------------------

  // Whether an operation on these inputs must be recorded.
  template <class... V>
  static bool needs_grad(const V&... inputs) {
    return grad_enabled() && (inputs.requires_grad() || ...);
  }

  // Storage for an operation's result, reused across reset(); requires grad when asked.
  variable<T> make_result(const ad::shape& s, bool requires_grad) {
    auto& impl = next_storage();
    impl->value.resize(s);
    impl->requires_grad = requires_grad;
    impl->producer = -1;
    if (requires_grad) impl->grad.resize(s);
    return variable<T>(impl);
  }

  // A tensor an operation saves for its backward pass; valid until reset(), reused across it.
  tensor<T>& saved(const ad::shape& s) {
    auto& impl = next_storage();
    impl->requires_grad = false;
    impl->producer = -1;
    impl->value.resize(s);
    return impl->value;
  }

  // Records the node that produced `output` from `inputs`. The closure runs once per backward
  // pass; it must be trivially copyable (capture pointers and scalars) and fit closure_capacity.
  template <class F>
  void record(const char* name, const variable<T>& output, std::initializer_list<variable<T>> inputs, F closure) {
    static_assert(std::is_trivially_copyable_v<F> && std::is_trivially_destructible_v<F>,
                  "ika::ad::tape::record: the backward closure must capture pointers and scalars only");
    static_assert(sizeof(F) <= closure_capacity && alignof(F) <= alignof(std::max_align_t),
                  "ika::ad::tape::record: the backward closure captures too much");
    node& n = nodes_.emplace_back();
    n.name = name;
    n.output = output.impl();
    n.first_input = links_.size();
    for (const auto& v : inputs) links_.push_back(v.shared());
    n.input_count = links_.size() - n.first_input;
    ::new (static_cast<void*>(n.storage)) F(closure);
    n.run = [](const std::byte* storage) { (*std::launder(reinterpret_cast<const F*>(storage)))(); };
    output.impl()->producer = std::ptrdiff_t(nodes_.size() - 1);
  }

  // Keeps a copy of `value` alive until reset(), for a backward closure to point to (an
  // operation's parameters that are not tensors, such as an attention's logit expression).
  template <class U>
  const U& keep(U value) {
    auto held = std::make_shared<U>(std::move(value));
    const U& ref = *held;
    kept_.push_back(std::move(held));
    return ref;
  }

  // Appends inputs for an operation with many of them (concat); returns where they start. The
  // node that uses them passes an empty input list to record().
  std::size_t link(const variable<T>& v) {
    links_.push_back(v.shared());
    return links_.size() - 1;
  }
  impl_type* linked(std::size_t i) const { return links_[i].get(); }

  // --- backward --------------------------------------------------------------------------------

  // d loss / d loss = 1 for a loss of one element.
  void backward(const variable<T>& loss) {
    detail::require(loss.defined() && loss.size() == 1, "loss", "a variable of one element, got ",
                    loss.defined() ? loss.shape().str() : std::string("an undefined variable"));
    backward_impl(loss, nullptr);
  }

  // The vector-Jacobian product: `seed` is d loss / d output, of the output's shape.
  void backward(const variable<T>& output, const tensor<T>& seed) {
    detail::require(output.defined(), "output", "a defined variable");
    detail::require(seed.shape() == output.shape(), "seed", "the shape of the output ", output.shape().str(),
                    ", got ", seed.shape().str());
    backward_impl(output, &seed);
  }

  // Forgets the nodes; keeps every buffer for the next step. Results of earlier steps are reused.
  void reset() {
    nodes_.clear();
    links_.clear();
    kept_.clear();
    used_ = 0;
  }

  // --- introspection ---------------------------------------------------------------------------
  std::size_t size() const { return nodes_.size(); }
  std::size_t node_capacity() const { return nodes_.capacity(); }
  std::size_t storage_count() const { return pool_.size(); }
  const char* node_name(std::size_t i) const { return nodes_[i].name; }

private:
  struct node {
    alignas(std::max_align_t) std::byte storage[closure_capacity];
    void (*run)(const std::byte*) = nullptr;
    const char* name = "";
    impl_type* output = nullptr;
    std::size_t first_input = 0, input_count = 0;
  };

  std::shared_ptr<impl_type>& next_storage() {
    if (used_ == pool_.size()) pool_.push_back(std::make_shared<impl_type>());
    return pool_[used_++];
  }

  void backward_impl(const variable<T>& output, const tensor<T>* seed) {
    detail::require(output.requires_grad(), "loss",
                    "a variable that requires grad (computed from a variable with requires_grad while grad is enabled)");
    const std::ptrdiff_t last = output.impl()->producer;
    detail::require(last < std::ptrdiff_t(nodes_.size()), "loss", "a variable recorded on this tape since its last reset");
    // Gradients of results restart from zero each pass; leaves accumulate.
    for (std::size_t i = 0; i < used_; ++i)
      if (pool_[i]->requires_grad && pool_[i]->producer >= 0) pool_[i]->grad.fill(T(0));
    tensor<T>& g = output.impl()->grad;
    if (seed)
      for (index_t i = 0; i < g.size(); ++i) g[i] += (*seed)[i];
    else
      g[0] += T(1);
    for (std::ptrdiff_t i = last; i >= 0; --i) nodes_[std::size_t(i)].run(nodes_[std::size_t(i)].storage);
  }

  std::vector<node> nodes_;
  std::vector<std::shared_ptr<impl_type>> links_; // inputs of the nodes, kept alive while recorded
  std::vector<std::shared_ptr<impl_type>> pool_;  // results and saved tensors, handed out in order
  std::vector<std::shared_ptr<const void>> kept_; // values held for closures until reset()
  std::size_t used_ = 0;
};

} // namespace ika::ad
