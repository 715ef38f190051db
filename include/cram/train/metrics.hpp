// Telling the user how training goes: the cost model (FLOPs per token, MFU against a known device peak),
// metrics.jsonl (one JSON object per logged step, appended and flushed), the progress line (redrawn in
// place on a terminal, plain periodic lines otherwise) and a loss-versus-time SVG plot drawn by our code.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/status_line.hpp"
#include "cram/model/config.hpp"
#include "cram/train/budget.hpp"

namespace cram::train {

// Training FLOPs per token (CRAMMING.md "Cost model"): 6 N_matmul + 12 L d T + 6 d V p, where N_matmul
// counts the weights of the block matmuls (and the MLM transform), T is the sequence length and p the
// share of tokens that reach the decoder (the masked fraction with sparse prediction, else 1).
inline double flops_per_token(const bert_config& c, int seq, double mask_fraction = 0.25) {
    const double d = c.hidden;
    const double per_layer = 3 * d * d + d * d + d * c.intermediate + double(c.ffn_inner()) * d;
    double n_matmul = per_layer * c.layers;
    const double decoded = c.sparse_prediction ? mask_fraction : 1.0;
    if (c.head_transform) n_matmul += d * d * decoded;
    return 6 * n_matmul + 12.0 * c.layers * d * seq + 6 * d * c.vocab * decoded;
}

// Dense 16-bit tensor-core peak with fp32 accumulation (FLOP/s: bf16 from Ampere on, fp16 on Turing, which has no
// bf16) for GPUs we know by name; 0 when unknown (no MFU shown).
inline double known_peak_flops(const std::string& device_name) {
    auto has = [&](const char* s) { return device_name.find(s) != std::string::npos; };
    if (has("H100") && has("PCIe")) return 756e12;
    if (has("H100") || has("H200") || has("GH200")) return 989e12;
    if (has("A100")) return 312e12;
    if (has("L40S")) return 362e12;
    if (has("A6000")) return 154.8e12;
    if (has("4090")) return 165.2e12;
    if (has("A4000")) return 76.7e12;       // the paper's other card
    if (has("2080 Ti")) return 53.8e12;     // the paper's headline card (fp16; GeForce halves fp32 accumulation)
    if (has("Tesla T4")) return 65e12;
    return 0;
}

// One logged optimizer step.
struct step_record {
    std::int64_t step = 0, micro_steps = 0, sequences = 0, tokens = 0, data_position = 0, skipped = 0;
    double elapsed = 0, progress = 0, loss = 0, lr = 0, grad_norm = 0, clip_scale = 1;
    int batch = 0, accumulation = 0;
    double tokens_per_s = 0, mfu = -1;  // mfu < 0: unknown peak
    bool skipped_step = false;
    bool partial_step = false;  // the budget ended inside it: applied as the mean of its micro-batches
    // data-parallel runs (ranks > 1): seconds this step spent summing gradients over the ranks (rank 0's
    // wait included), and the spread between the busiest and the least busy rank's compute (stragglers)
    int ranks = 1;
    double allreduce_s = 0, rank_spread_s = 0;
    // fp16 (precision.hpp): the loss scale the step ran with (0: no loss scaling), and whether its gradients
    // overflowed (the step is then skipped and the scale backs off)
    double loss_scale = 0;
    bool overflow = false;

    nlohmann::json to_json() const {
        nlohmann::json j{{"step", step},
                         {"elapsed_s", elapsed},
                         {"progress", progress},
                         {"loss", std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(nullptr)},
                         {"lr", lr},
                         {"grad_norm", std::isfinite(grad_norm) ? nlohmann::json(grad_norm) : nlohmann::json(nullptr)},
                         {"clip_scale", clip_scale},
                         {"batch", batch},
                         {"accumulation", accumulation},
                         {"micro_steps", micro_steps},
                         {"sequences", sequences},
                         {"tokens", tokens},
                         {"data_position", data_position},
                         {"tokens_per_s", tokens_per_s},
                         {"skipped_steps", skipped}};
        if (mfu >= 0) j["mfu"] = mfu;
        if (skipped_step) j["skipped"] = true;
        if (partial_step) j["partial"] = true;
        if (loss_scale > 0) j["loss_scale"] = loss_scale;
        if (overflow) j["overflow"] = true;
        if (ranks > 1) {
            j["ranks"] = ranks;
            j["allreduce_s"] = allreduce_s;
            j["rank_spread_s"] = rank_spread_s;
        }
        return j;
    }
};

// Appends JSON lines to RUN/metrics.jsonl. On resume, lines past the checkpoint's step are dropped first
// (the resumed run writes them again), so the file always describes one consistent run.
class metrics_log {
public:
    metrics_log() = default;
    // On resume, records after the checkpoint (a later step, or micro-steps past it: skipped steps) are
    // dropped: the resumed run writes them again.
    metrics_log(const std::filesystem::path& path, bool resume, std::int64_t resume_step,
                std::int64_t resume_micro_steps = -1)
        : path_(path) {
        if (resume && std::filesystem::exists(path)) {
            std::ifstream in(path);
            std::string line, kept;
            while (std::getline(in, line)) {
                const auto j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_discarded() || !j.is_object()) continue;  // a line torn by a crash
                if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<std::int64_t>() > resume_step) continue;
                if (resume_micro_steps >= 0 && j.contains("micro_steps") && j["micro_steps"].is_number_integer() &&
                    j["micro_steps"].get<std::int64_t>() > resume_micro_steps)
                    continue;
                kept += line + "\n";
                if (j.contains("step") && j.contains("loss") && j["loss"].is_number() && j.contains("elapsed_s"))
                    curve_.emplace_back(j["elapsed_s"].get<double>(), j["loss"].get<double>());
            }
            atomic_write_file(path, kept);
        } else {
            atomic_write_file(path, "");
        }
        out_ = std::fopen(path.c_str(), "a");
        if (!out_) CRAM_THROW("cannot append to ", path.string());
    }
    metrics_log(const metrics_log&) = delete;
    metrics_log& operator=(const metrics_log&) = delete;
    ~metrics_log() {
        if (out_) std::fclose(out_);
    }
    void write(const nlohmann::json& j) {
        if (j.contains("loss") && j["loss"].is_number() && j.contains("elapsed_s") && !j.contains("event"))
            curve_.emplace_back(j["elapsed_s"].get<double>(), j["loss"].get<double>());
        if (!out_) return;
        const std::string s = j.dump() + "\n";
        std::fwrite(s.data(), 1, s.size(), out_);
        std::fflush(out_);
    }
    const std::vector<std::pair<double, double>>& curve() const { return curve_; }

private:
    std::filesystem::path path_;
    std::FILE* out_ = nullptr;
    std::vector<std::pair<double, double>> curve_;  // (elapsed s, loss) for the plot
};

inline std::string si_rate(double v) {
    char buf[32];
    if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
    else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
    else std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
}

// The training status line (elapsed / budget, ETA, step, loss, rate, MFU) on cram::status_line: redrawn
// twice a second on a terminal, a plain "train: ..." line every `plain_every` seconds otherwise.
class progress_line {
public:
    explicit progress_line(bool quiet = false, double plain_every = 10.0, std::FILE* out = stderr)
        : line_(quiet, /*tty_every=*/0.5, plain_every, "train: ", out) {}

    void update(const step_record& r, double budget, double smoothed_loss, bool force = false) {
        if (!line_.due(force)) return;
        const double eta = std::max(0.0, budget - r.elapsed);
        char mfu[32] = "";
        if (r.mfu >= 0) std::snprintf(mfu, sizeof mfu, " | MFU %.1f%%", 100 * r.mfu);
        char line[512];
        std::snprintf(line, sizeof line,
                      "%s / %s (%.1f%%) ETA %s | step %lld | loss %.4f | lr %.2e | batch %d | %s tok/s%s",
                      format_duration(r.elapsed).c_str(), format_duration(budget).c_str(), 100 * r.progress,
                      format_duration(eta).c_str(), static_cast<long long>(r.step), smoothed_loss, r.lr, r.batch,
                      si_rate(r.tokens_per_s).c_str(), mfu);
        line_.show(line);
    }
    void newline() { line_.newline(); }
    void message(const std::string& s) { line_.message(s); }
    bool tty() const { return line_.tty(); }

private:
    status_line line_;
};

// "Nice" axis ticks: steps of 1, 2 or 5 times a power of ten.
inline std::vector<double> axis_ticks(double lo, double hi, int target = 6) {
    std::vector<double> t;
    if (!(hi > lo)) hi = lo + 1;
    const double raw = (hi - lo) / target;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double r = raw / mag;
    const double step = (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
    for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) t.push_back(v);
    return t;
}

// Writes an SVG line plot of loss against elapsed time (minutes or hours on the x axis), atomically.
inline void write_loss_plot(const std::filesystem::path& path, const std::vector<std::pair<double, double>>& points,
                            const std::string& title) {
    const double W = 800, H = 480, L = 70, R = 20, T = 40, B = 55;
    std::vector<std::pair<double, double>> pts;
    for (const auto& p : points)
        if (std::isfinite(p.first) && std::isfinite(p.second)) pts.push_back(p);
    double tmax = 1, lmin = 0, lmax = 1;
    if (!pts.empty()) {
        tmax = 0;
        lmin = 1e300;
        lmax = -1e300;
        for (const auto& [t, l] : pts) {
            tmax = std::max(tmax, t);
            lmin = std::min(lmin, l);
            lmax = std::max(lmax, l);
        }
        if (tmax <= 0) tmax = 1;
        if (lmax - lmin < 1e-6) { lmin -= 0.5; lmax += 0.5; }
    }
    const bool hours = tmax > 2 * 3600, minutes = !hours && tmax > 120;
    const double unit = hours ? 3600 : minutes ? 60 : 1;
    const char* unit_name = hours ? "hours" : minutes ? "minutes" : "seconds";
    const auto xt = axis_ticks(0, tmax / unit), yt = axis_ticks(lmin, lmax);
    const double x1 = std::max(tmax / unit, xt.empty() ? 0 : xt.back());
    const double y0 = std::min(lmin, yt.empty() ? lmin : yt.front()), y1 = std::max(lmax, yt.empty() ? lmax : yt.back());
    auto X = [&](double v) { return L + (W - L - R) * v / x1; };
    auto Y = [&](double v) { return H - B - (H - T - B) * (v - y0) / (y1 - y0); };
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(1);
    s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
      << " " << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    std::string esc;
    for (char c : title) esc += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
    s << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << esc << "</text>\n";
    for (double v : xt) {
        s << "<line x1=\"" << X(v) << "\" y1=\"" << T << "\" x2=\"" << X(v) << "\" y2=\"" << H - B
          << "\" stroke=\"#e4e4e4\"/>\n";
        s << "<text x=\"" << X(v) << "\" y=\"" << H - B + 18 << "\" text-anchor=\"middle\">" << v << "</text>\n";
    }
    for (double v : yt) {
        s << "<line x1=\"" << L << "\" y1=\"" << Y(v) << "\" x2=\"" << W - R << "\" y2=\"" << Y(v)
          << "\" stroke=\"#e4e4e4\"/>\n";
        s << "<text x=\"" << L - 8 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">";
        s.precision(2);
        s << v << "</text>\n";
        s.precision(1);
    }
    s << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
      << "\" fill=\"none\" stroke=\"#444\"/>\n";
    s << "<text x=\"" << L + (W - L - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">elapsed budget ("
      << unit_name << ")</text>\n";
    s << "<text x=\"18\" y=\"" << T + (H - T - B) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 18 "
      << T + (H - T - B) / 2 << ")\">MLM loss</text>\n";
    if (!pts.empty()) {
        s << "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
        s.precision(2);
        // at most ~2000 vertices: decimate evenly, always keeping the last point
        const std::size_t stride = std::max<std::size_t>(1, pts.size() / 2000);
        for (std::size_t i = 0; i < pts.size(); i += stride)
            s << X(pts[i].first / unit) << "," << Y(pts[i].second) << " ";
        s << X(pts.back().first / unit) << "," << Y(pts.back().second);
        s << "\"/>\n";
    }
    s << "</svg>\n";
    atomic_write_file(path, s.str());
}

}  // namespace cram::train
