// SPDX-License-Identifier: MIT
// fashion_mnist with the GPU engine available: the same program (fashion_mnist.cpp), compiled by
// nvcc so that --device cuda runs each attention node with ika::cuda::attention_engine.
#define IKA_EXAMPLE_CUDA
#include <ika/cuda/autodiff.cuh>

#include "fashion_mnist.cpp"
