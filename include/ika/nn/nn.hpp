// SPDX-License-Identifier: MIT
#pragma once

// Everything of ika::nn: modules (linear, layer_norm, dropout, feed_forward, encoder_layer,
// multihead_attention), spectral sources, optimisers, schedules and parameter files.

#include "ika/nn/attention.hpp"
#include "ika/nn/layers.hpp"
#include "ika/nn/module.hpp"
#include "ika/nn/optim.hpp"
#include "ika/nn/schedule.hpp"
#include "ika/nn/serialize.hpp"
#include "ika/nn/spectral.hpp"
