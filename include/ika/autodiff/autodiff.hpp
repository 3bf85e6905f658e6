// SPDX-License-Identifier: MIT
#pragma once

// ika::ad — reverse-mode automatic differentiation on tensors: one tape node per tensor operation.
//
//   ika::ad::variable<double> w(ika::ad::tensor<double>({4, 3}, 0.1), /*requires_grad*/ true);
//   ika::ad::variable<double> x(ika::ad::tensor<double>({8, 4}, 1.0));
//   ika::ad::tape<double> tp;
//   auto h = ika::ad::gelu(tp, ika::ad::matmul(tp, x, w));
//   auto loss = ika::ad::mean(tp, ika::ad::mul(tp, h, h));
//   tp.backward(loss);   // w.grad() += d loss / d w
//   tp.reset();          // next step reuses every buffer

#include "ika/autodiff/attention.hpp"
#include "ika/autodiff/linalg.hpp"
#include "ika/autodiff/nn.hpp"
#include "ika/autodiff/ops.hpp"
#include "ika/autodiff/tape.hpp"
#include "ika/autodiff/tensor.hpp"
