// `cram_bert_24h device`: what the GPU side of this build can do here: whether CUDA is compiled in, the
// device (name, compute capability, memory) or why it is unusable, the precision --precision auto trains in
// there, and the micro-batch the trainer would pick for a preset. Exit code 0 when a usable GPU is present, 2
// otherwise (scripts can test it).
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"
#include "cram/train/precision.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

void add_device_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("device", "Show the CUDA device this build would train on, and its micro-batch");
    struct args {
        std::string preset = "crammed_bert";
        int seq = 128;
    };
    auto a = std::make_shared<args>();
    cmd->add_option("--preset", a->preset, "Model preset for the micro-batch estimate")->capture_default_str();
    cmd->add_option("--seq", a->seq, "Sequence length")->capture_default_str();
    cmd->callback([a] {
        if (!cuda_compiled()) {
            std::printf("cuda: not compiled in (configure with -DCRAM_CUDA=ON where nvcc exists)\n");
            throw CLI::RuntimeError(2);
        }
        const auto info = cuda_probe();
        if (!info.usable) {
            std::printf("cuda: compiled in, no usable device: %s\n", info.reason.c_str());
            throw CLI::RuntimeError(2);
        }
        std::printf("cuda: %s (sm_%d%d), %zu MiB free of %zu MiB\n", info.name.c_str(), info.major, info.minor,
                    info.free_bytes >> 20, info.total_bytes >> 20);
        const bool bf16 = train::auto_precision(info.major) == train::precision::bf16;
        std::printf("precision: %s (--precision auto; %s)\n", bf16 ? "bf16" : "fp16 with dynamic loss scaling",
                    bf16 ? "fp16 on request" : "no bf16 below sm_80; GLUE fine-tuning runs on the CPU");
        const int mb = cuda_pick_micro_batch(a->preset, a->seq);
        std::printf("micro-batch for %s at seq %d: %d sequences\n", a->preset.c_str(), a->seq, mb);
    });
}

}  // namespace cram::app
