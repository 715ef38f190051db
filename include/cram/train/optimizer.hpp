// The recipe's AdamW settings and global-norm clipping (folded into the update as a gradient scale). The
// update itself runs over a training_state's flat buffers (training_state.hpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/ops/adamw.hpp"
#include "cram/model/parameters.hpp"

namespace cram::train {

struct adamw_options {
    float lr = 1e-3f;  // peak learning rate; the schedule multiplies it
    float beta1 = 0.9f;
    float beta2 = 0.98f;
    float eps = 1e-12f;
    float weight_decay = 0.01f;
    float clip_norm = 0.5f;  // global L2 norm; <= 0 disables clipping
};

// The factor that brings a gradient of norm `norm` down to `clip` (1 when already within, or disabled).
inline float clip_scale(double norm, float clip) {
    if (clip <= 0.0f || !(norm > clip)) return 1.0f;
    return static_cast<float>(clip / norm);
}

}  // namespace cram::train
