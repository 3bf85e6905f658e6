// SPDX-License-Identifier: MIT
#pragma once

// Hooks of policies are compiled by the C++ compiler for the CPU and by nvcc for the GPU.
#if defined(__CUDACC__)
#define IKA_HOST_DEVICE __host__ __device__
#else
#define IKA_HOST_DEVICE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define IKA_ALWAYS_INLINE inline __attribute__((always_inline))
#define IKA_RESTRICT __restrict__
#else
#define IKA_ALWAYS_INLINE inline
#define IKA_RESTRICT
#endif

#define IKA_VERSION_MAJOR 0
#define IKA_VERSION_MINOR 1
#define IKA_VERSION_PATCH 0
