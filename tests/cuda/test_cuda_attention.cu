// SPDX-License-Identifier: MIT
// ika::cuda::attention against the CPU reference (double) on awkward shapes: every kernel, norm
// and mask the GPU engine accepts, the three head structures, strided layouts, fully masked rows,
// errors at the API edge. Exits with 77 (CTest: skipped) and says so when there is no CUDA device.

#include "device_main.hpp"

#include <cuda_runtime.h>

#include <cstdio>
#include <limits>
#include <memory>
#include <sstream>

#include <ika/cuda/attention.cuh>

#include "../support.hpp"

using namespace ika_test;

namespace {

// A device copy of a host vector, freed on scope exit.
template <class T>
struct device_vector {
  T* data = nullptr;
  std::size_t size = 0;
  explicit device_vector(const std::vector<T>& host) : size(host.size()) {
    ika::cuda::detail::check(cudaMalloc(reinterpret_cast<void**>(&data), std::max<std::size_t>(size, 1) * sizeof(T)),
                             "cudaMalloc");
    ika::cuda::detail::check(cudaMemcpy(data, host.data(), size * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  ~device_vector() { cudaFree(data); }
  device_vector(const device_vector&) = delete;
  std::vector<T> to_host() const {
    std::vector<T> host(size);
    ika::cuda::detail::check(cudaMemcpy(host.data(), data, size * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return host;
  }
};

// The same strides as a host view, over the device copy of its storage.
template <class T>
ika::tensor_view<T> on_device(const ika::tensor_view<T>& host_view, const T* host_base, T* device_base) {
  ika::tensor_view<T> view = host_view;
  view.data = device_base + (host_view.data - host_base);
  return view;
}

// What host_view reads when its storage is `values` (a copy of that storage, e.g. a gradient copied
// back from the GPU), in contiguous (B, H, L, ·) order: the order of the reference's gradients,
// whatever the layout of the view the GPU wrote through.
template <class T>
std::vector<T> in_bhld_order(std::vector<T> values, const ika::tensor_view<T>& host_view, const T* host_base) {
  const ika::tensor_view<T> view = on_device(host_view, host_base, values.data()); // the same strides over the copy
  std::vector<T> ordered;
  ordered.reserve(std::size_t(view.batch * view.heads * view.rows * view.cols));
  for (index_t b = 0; b < view.batch; ++b)
    for (index_t h = 0; h < view.heads; ++h)
      for (index_t l = 0; l < view.rows; ++l)
        for (index_t d = 0; d < view.cols; ++d) ordered.push_back(view(b, h, l, d));
  return ordered;
}

// The same values in double, contiguous (B, H, L, ·): the reference's inputs.
qkv_problem<double> in_double(const qkv_problem<float>& p) {
  qkv_problem<double> pd(layout::bhld, p.B, p.Hq, p.Hkv, p.Lq, p.Lk, p.D, p.Dv, 0);
  for (index_t b = 0; b < p.B; ++b)
    for (index_t h = 0; h < p.Hq; ++h)
      for (index_t i = 0; i < p.Lq; ++i)
        for (index_t d = 0; d < p.D; ++d) pd.q(b, h, i, d) = p.q(b, h, i, d);
  for (index_t b = 0; b < p.B; ++b)
    for (index_t h = 0; h < p.Hkv; ++h)
      for (index_t j = 0; j < p.Lk; ++j) {
        for (index_t d = 0; d < p.D; ++d) pd.k(b, h, j, d) = p.k(b, h, j, d);
        for (index_t d = 0; d < p.Dv; ++d) pd.v(b, h, j, d) = p.v(b, h, j, d);
      }
  return pd;
}

// Gradients on the GPU (from the GPU forward's out and lse) against the reference backward in
// double, for a random d_out.
template <class Heads = ika::grouped_heads, class Expr>
void compare_gradients(const qkv_problem<float>& p, const Expr& expr, const std::string& what) {
  REQUIRE(p.packed_data.empty());
  std::vector<float> d_out_host(std::size_t(p.B * p.Hq * p.Lq * p.Dv));
  fill_normal(d_out_host, 77);
  device_vector<float> q_d(p.q_data), k_d(p.k_data), v_d(p.v_data), g_d(d_out_host);
  const auto q = on_device(p.q, p.q_data.data(), q_d.data), k = on_device(p.k, p.k_data.data(), k_d.data),
             v = on_device(p.v, p.v_data.data(), v_d.data);
  device_vector<float> out_d(std::vector<float>(d_out_host.size())), lse_d(std::vector<float>(std::size_t(p.B * p.Hq * p.Lq)));
  // gradients prefilled with NaN: an element the backward does not write shows up
  const float nan = std::numeric_limits<float>::quiet_NaN();
  device_vector<float> dq_d(std::vector<float>(p.q_data.size(), nan)), dk_d(std::vector<float>(p.k_data.size(), nan)),
      dv_d(std::vector<float>(p.v_data.size(), nan));
  const auto out = ika::bhld(out_d.data, p.B, p.Hq, p.Lq, p.Dv);
  const auto lse = ika::bhl(lse_d.data, p.B, p.Hq, p.Lq);
  ika::cuda::attention<Heads>(q, k, v, out, expr, {.lse = lse});
  ika::attention_grads<float> grads{on_device(p.q, p.q_data.data(), dq_d.data), on_device(p.k, p.k_data.data(), dk_d.data),
                                    on_device(p.v, p.v_data.data(), dv_d.data)};
  // the spectral points' gradients too, for the random-feature kernels
  std::vector<std::unique_ptr<device_vector<float>>> dspectral_d;
  if constexpr (requires { ika::detail::spectral_points(expr.kernel); }) {
    const auto points = ika::detail::spectral_points(expr.kernel);
    for (std::size_t t = 0; t < 2; ++t) {
      if (points[t].data == nullptr) continue;
      const auto& w = points[t];
      dspectral_d.push_back(std::make_unique<device_vector<float>>(
          std::vector<float>(std::size_t(w.heads * w.dim * w.count), nan)));
      grads.dspectral[t] = ika::spectral(dspectral_d.back()->data, w.heads, w.dim, w.count);
    }
  }
  ika::cuda::attention_backward<Heads>(q, k, v, ika::tensor_view<const float>(out), ika::bhl(static_cast<const float*>(lse_d.data), p.B, p.Hq, p.Lq),
                                       ika::tensor_view<const float>(ika::bhld(g_d.data, p.B, p.Hq, p.Lq, p.Dv)), expr,
                                       grads);
  ika::cuda::detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  const qkv_problem<double> pd = in_double(p);
  const std::vector<double> d_out_double(d_out_host.begin(), d_out_host.end());
  const auto ref = ika::reference::attention_backward<Heads>(
      pd.q, pd.k, pd.v, ika::bhld(d_out_double.data(), p.B, p.Hq, p.Lq, p.Dv), expr);
  INFO(what);
  constexpr double gradient_tolerance = 1e-3;
  // the GPU wrote the gradients through views with q's, k's and v's strides (blhd for some shapes)
  CHECK(relative_error(in_bhld_order(dq_d.to_host(), p.q, p.q_data.data()), ref.dq) <= gradient_tolerance);
  CHECK(relative_error(in_bhld_order(dk_d.to_host(), p.k, p.k_data.data()), ref.dk) <= gradient_tolerance);
  CHECK(relative_error(in_bhld_order(dv_d.to_host(), p.v, p.v_data.data()), ref.dv) <= gradient_tolerance);
  REQUIRE(dspectral_d.size() == ref.dspectral.size());
  for (std::size_t t = 0; t < dspectral_d.size(); ++t) {
    INFO("spectral tensor ", t);
    CHECK(relative_error(dspectral_d[t]->to_host(), ref.dspectral[t]) <= gradient_tolerance);
  }
}

template <class Heads = ika::grouped_heads, class Expr>
void compare_with_reference(const qkv_problem<float>& p, const Expr& expr, const std::string& what) {
  const bool packed = !p.packed_data.empty();
  device_vector<float> packed_d(p.packed_data), q_d(p.q_data), k_d(p.k_data), v_d(p.v_data);
  const auto q = packed ? on_device(p.q, p.packed_data.data(), packed_d.data) : on_device(p.q, p.q_data.data(), q_d.data);
  const auto k = packed ? on_device(p.k, p.packed_data.data(), packed_d.data) : on_device(p.k, p.k_data.data(), k_d.data);
  const auto v = packed ? on_device(p.v, p.packed_data.data(), packed_d.data) : on_device(p.v, p.v_data.data(), v_d.data);
  result<float> gpu(p.B, p.Hq, p.Lq, p.Dv);
  result<double> ref(p.B, p.Hq, p.Lq, p.Dv);
  device_vector<float> out_d(gpu.out), lse_d(gpu.lse);
  ika::cuda::attention<Heads>(q, k, v, ika::bhld(out_d.data, p.B, p.Hq, p.Lq, p.Dv), expr,
                              {.lse = ika::bhl(lse_d.data, p.B, p.Hq, p.Lq)});
  ika::cuda::detail::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  gpu.out = out_d.to_host();
  gpu.lse = lse_d.to_host();
  // the reference in double, from the same (float) inputs
  const qkv_problem<double> pd = in_double(p);
  ika::reference::attention<Heads>(pd.q, pd.k, pd.v, ref.o(), expr, {.lse = ref.l()});
  INFO(what);
  CHECK_FALSE(any_nan(gpu.out));
  CHECK(relative_error(gpu.out, ref.out) <= tolerance<float>());
  CHECK(relative_error(gpu.lse, ref.lse) <= tolerance<float>());
}

struct gpu_shape {
  index_t Lq, Lk, D, Dv;
};
constexpr gpu_shape gpu_shapes[] = {{1, 1, 8, 8}, {7, 7, 33, 9}, {33, 33, 64, 17}, {257, 257, 16, 5},
                                    {1, 257, 128, 33}, {7, 300, 8, 64}, {130, 1000, 33, 3}};

struct heads_case {
  const char* name;
  index_t Hq, Hkv;
};
constexpr heads_case gpu_heads[] = {{"independent", 3, 3}, {"grouped", 4, 2}, {"multi-query", 3, 1}};

template <class F>
void for_each_gpu_kernel(index_t Hq, index_t D, F&& f) {
  f("rbf", ika::rbf{});
  f("rbf(bandwidth 2)", ika::rbf{2.0});
  f("dot_product", ika::dot_product{});
  f("laplacian", ika::laplacian{});
  f("random_fourier(M = 16, shared by the heads)", ika::random_fourier<>::from_seed(5, 1, D, 16));
  auto clamped = ika::random_fourier<>::from_seed(6, Hq, D, 7);
  clamped.estimate = ika::rff_estimate::clamp;
  f("random_fourier(M = 7 per head, clamp)", clamped);
  f("yaglom_rff(M = 33 per head)", ika::yaglom_rff<>::from_seed(7, Hq, D, 33));
}

template <class F>
void for_each_gpu_norm(F&& f) {
  f("none", ika::no_norm{});
  f("lp(2)", ika::lp{2.0});
  f("lp(3)", ika::lp{3.0});
  f("lp(1, with query)", ika::lp{1.0, ika::norm_exponent::two, ika::norm_divisor::paper, true});
  f("lp(inf)", ika::lp{ika::lp::infinity});
  f("lp(2.5, r = p)", ika::lp{2.5, ika::norm_exponent::p});
}

template <class F>
void for_each_gpu_mask(F&& f) {
  f("none", ika::logit_expression<ika::no_kernel, ika::no_norm>{});
  f("causal_upper_left", ika::mask(ika::causal_upper_left{}));
  f("causal_lower_right", ika::mask(ika::causal_lower_right{}));
}

} // namespace

TEST_CASE("cuda::attention == reference for every GPU kernel x norm x mask x heads") {
  std::size_t cases = 0;
  for (std::size_t shape_index = 0; shape_index < std::size(gpu_shapes); ++shape_index) {
    const gpu_shape& sc = gpu_shapes[shape_index];
    const heads_case& hc = gpu_heads[shape_index % std::size(gpu_heads)];
    const layout l = sc.Lq == sc.Lk && shape_index % 2 == 0 ? layout::packed : shape_index % 2 ? layout::blhd : layout::bhld;
    const qkv_problem<float> p(l, 2, hc.Hq, hc.Hkv, sc.Lq, sc.Lk, sc.D, sc.Dv, 500 + shape_index, 0.7);
    for_each_gpu_mask([&](const char* mask_name, const auto& mask_expr) {
      for_each_gpu_kernel(hc.Hq, sc.D, [&](const char* kernel_name, const auto& kernel) {
        for_each_gpu_norm([&](const char* norm_name, const auto& norm) {
          std::ostringstream what;
          what << hc.name << " " << name(l) << " Lq=" << sc.Lq << " Lk=" << sc.Lk << " D=" << sc.D << " Dv=" << sc.Dv
               << " mask=" << mask_name << " kernel=" << kernel_name << " norm=" << norm_name;
          compare_with_reference(p, ika::log_kernel(kernel) + ika::magnitude(norm) + mask_expr, what.str());
          ++cases;
        });
      });
    });
  }
  CHECK(cases == std::size(gpu_shapes) * 3 * 7 * 6);
}

TEST_CASE("cuda::attention_backward == reference backward for every GPU kernel x norm x mask x heads") {
  constexpr gpu_shape backward_shapes[] = {{1, 1, 8, 8}, {7, 7, 33, 9}, {33, 33, 64, 17}, {5, 40, 16, 5}};
  std::size_t cases = 0;
  for (std::size_t shape_index = 0; shape_index < std::size(backward_shapes); ++shape_index) {
    const gpu_shape& sc = backward_shapes[shape_index];
    const heads_case& hc = gpu_heads[shape_index % std::size(gpu_heads)];
    const qkv_problem<float> p(shape_index % 2 ? layout::blhd : layout::bhld, 2, hc.Hq, hc.Hkv, sc.Lq, sc.Lk, sc.D,
                               sc.Dv, 900 + shape_index, 0.7);
    for_each_gpu_mask([&](const char* mask_name, const auto& mask_expr) {
      const auto check = [&](const char* kernel_name, const auto& kernel) {
        for_each_gpu_norm([&](const char* norm_name, const auto& norm) {
          std::ostringstream what;
          what << "backward " << hc.name << " Lq=" << sc.Lq << " Lk=" << sc.Lk << " D=" << sc.D << " Dv=" << sc.Dv
               << " mask=" << mask_name << " kernel=" << kernel_name << " norm=" << norm_name;
          compare_gradients(p, ika::log_kernel(kernel) + ika::magnitude(norm) + mask_expr, what.str());
          ++cases;
        });
      };
      check("rbf", ika::rbf{});
      check("dot_product", ika::dot_product{});
      check("laplacian", ika::laplacian{});
      check("random_fourier(M = 16, shared)", ika::random_fourier<>::from_seed(15, 1, sc.D, 16));
      check("yaglom_rff(M = 9 per head)", ika::yaglom_rff<>::from_seed(17, hc.Hq, sc.D, 9));
    });
  }
  CHECK(cases == std::size(backward_shapes) * 3 * 5 * 6);
}

TEST_CASE("cuda::attention: independent heads, fully masked rows give zeros and -inf") {
  const qkv_problem<float> p(layout::bhld, 1, 2, 2, 9, 5, 16, 8, 91, 0.7);
  compare_with_reference<ika::independent_heads>(p, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}),
                                                 "independent heads");
  // upper-left causal with Lq > Lk... every row sees key 0; lower-right with Lk < Lq hides the
  // first Lq − Lk rows completely
  compare_with_reference(p, ika::log_kernel(ika::rbf{}) + ika::mask(ika::causal_lower_right{}), "rows 0-3 fully masked");
}

TEST_CASE("cuda::attention: host pointers and bad shapes are rejected with the argument named") {
  const qkv_problem<float> p(layout::bhld, 1, 2, 2, 4, 4, 8, 8, 92);
  std::vector<float> out(std::size_t(1 * 2 * 4 * 8));
  check_throws_argument(
      [&] { ika::cuda::attention(p.q, p.k, p.v, ika::bhld(out.data(), 1, 2, 4, 8), ika::log_kernel(ika::rbf{})); }, "q");
  device_vector<float> q_d(p.q_data), k_d(p.k_data), v_d(p.v_data), out_d(out);
  const auto q = ika::bhld(q_d.data, 1, 2, 4, 8), k = ika::bhld(k_d.data, 1, 2, 4, 8);
  check_throws_argument(
      [&] {
        ika::cuda::attention(q, k, ika::bhld(v_d.data, 1, 2, 3, 8), ika::bhld(out_d.data, 1, 2, 4, 8),
                             ika::log_kernel(ika::rbf{}));
      },
      "v");
  check_throws_argument(
      [&] {
        ika::cuda::attention(q, k, ika::bhld(v_d.data, 1, 2, 4, 8), ika::bhld(out.data(), 1, 2, 4, 8),
                             ika::log_kernel(ika::rbf{}));
      },
      "out");
}
