// The precision policy and dynamic loss scaling. Training keeps fp32 master weights, gradients, optimizer
// state, LayerNorm statistics, softmax and loss everywhere; what changes is the 16-bit format of what the
// matmuls read and write on a GPU:
//   bf16  8 exponent bits: fp32's range, no scaling needed (tensor cores from sm_80, Ampere)
//   fp16  5 exponent bits: gradients below 2^-24 vanish and above 65504 overflow, so the loss is multiplied by a
//         scale S before the backward pass and the gradients by 1/S before the optimizer (tensor cores from
//         sm_70; the RTX 2080 Ti of the paper is sm_75 and has no bf16)
//   fp32  no 16-bit storage (the CPU backend)
// The scale is dynamic (the rule of Micikevicius et al. 2018 as PyTorch's GradScaler applies it, with its
// defaults): a step whose gradients are not finite is skipped and S halves; after `growth_interval` clean steps
// in a row S doubles. The scaler's state is in every checkpoint, so a resumed run continues with the same S.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cram/core/error.hpp"

namespace cram::train {

enum class precision { fp32, bf16, fp16 };

inline std::string_view to_string(precision p) {
    switch (p) {
        case precision::fp32: return "fp32";
        case precision::bf16: return "bf16";
        case precision::fp16: return "fp16";
    }
    return "?";
}

inline precision parse_precision(std::string_view name) {
    if (name == "fp32") return precision::fp32;
    if (name == "bf16") return precision::bf16;
    if (name == "fp16") return precision::fp16;
    CRAM_THROW("unknown precision '", std::string(name), "' (fp32, bf16 or fp16)");
}

// `auto` on a device: bf16 where its tensor cores have it (compute capability 8.0 and up), fp16 on Volta and
// Turing (7.x), fp32 on the CPU (major = 0).
inline precision auto_precision(int cc_major) {
    if (cc_major <= 0) return precision::fp32;
    return cc_major >= 8 ? precision::bf16 : precision::fp16;
}

struct loss_scaler_options {
    double init_scale = 65536.0;  // 2^16
    double growth_factor = 2.0;
    double backoff_factor = 0.5;
    int growth_interval = 2000;   // clean steps in a row before the scale grows
    double min_scale = 1.0;       // below this an overflow is no longer the scale's fault: the step counts as bad

    void validate() const {
        CRAM_CHECK(init_scale >= min_scale && min_scale > 0 && std::isfinite(init_scale), "loss scale ", init_scale,
                   " must be finite and at least the minimum ", min_scale);
        CRAM_CHECK(growth_factor > 1 && backoff_factor > 0 && backoff_factor < 1 && growth_interval >= 1,
                   "loss scaling needs a growth factor above 1, a back-off factor in (0, 1) and a growth interval of at "
                   "least one step (got ", growth_factor, ", ", backoff_factor, ", ", growth_interval, ")");
    }
};

class loss_scaler {
public:
    loss_scaler() = default;
    explicit loss_scaler(const loss_scaler_options& o) : o_(o), scale_(o.init_scale) { o.validate(); }

    double scale() const { return scale_; }
    int clean_steps() const { return clean_; }
    std::int64_t overflows() const { return overflows_; }
    // The scale cannot back off any further: a non-finite step now is the model's, not fp16's range.
    bool at_minimum() const { return scale_ <= o_.min_scale; }

    // After each optimizer step: whether its (scaled) gradients were all finite.
    void update(bool finite) {
        if (!finite) {
            scale_ = std::max(o_.min_scale, scale_ * o_.backoff_factor);
            clean_ = 0;
            ++overflows_;
        } else if (++clean_ >= o_.growth_interval) {
            scale_ *= o_.growth_factor;
            clean_ = 0;
        }
    }

    nlohmann::json to_json() const { return {{"scale", scale_}, {"clean_steps", clean_}, {"overflows", overflows_}}; }
    // Restores what to_json wrote; `where` names the file in errors.
    void restore(const nlohmann::json& j, const std::string& where) {
        CRAM_CHECK(j.is_object() && j.contains("scale") && j["scale"].is_number() && j.contains("clean_steps") &&
                       j["clean_steps"].is_number_integer() && j.contains("overflows") && j["overflows"].is_number_integer(),
                   where, ": loss_scaler must hold a numeric scale, clean_steps and overflows, got ", j.dump());
        const double s = j["scale"].get<double>();
        const int c = j["clean_steps"].get<int>();
        CRAM_CHECK(std::isfinite(s) && s > 0 && c >= 0, where, ": loss_scaler scale ", s, " / clean_steps ", c,
                   " are out of range");
        scale_ = s;
        clean_ = c;
        overflows_ = j["overflows"].get<std::int64_t>();
    }

private:
    loss_scaler_options o_{};
    double scale_ = 1.0;
    int clean_ = 0;
    std::int64_t overflows_ = 0;
};

}  // namespace cram::train
