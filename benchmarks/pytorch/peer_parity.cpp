// cram's side of the PyTorch peer's parity check (benchmarks/pytorch/check_parity.sh): loads a cram checkpoint
// (a checkpoint directory, or a run directory: its newest one) and one masked MLM batch written by `crammed_bert.py parity` (JSON), runs one
// mlm_forward_backward on the CPU backend (double or float), and prints the loss and per-tensor gradient norms
// as one JSON object; with --grads-out it also writes every gradient as safetensors, so the Python side can
// compare them element by element. It re-masks the batch's raw tokens with cram's own mask_batch and reports
// whether the Python port of the masking produced the same batch.
//
//   peer_parity --preset crammed_tiny --checkpoint RUN/checkpoints/step-N --batch batch.json
//               [--dtype double|float] [--grads-out grads.safetensors]
#include <cram/cram.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct args {
    std::string preset = "crammed_tiny", checkpoint, batch, dtype = "double", grads_out;
};

template <cram::bert_config C, class T>
int run(const args& a) {
    using model_t = cram::bert<C, cram::cpu::backend<T>>;
    const auto& layout = model_t::layout();

    // parameters: stored as F32 by the trainer; read as float, widen when T is double
    const std::vector<float> pf = cram::eval::load_encoder<C, float>(a.checkpoint);
    const std::vector<T> params(pf.begin(), pf.end());

    std::ifstream in(a.batch);
    if (!in) CRAM_THROW("cannot read ", a.batch);
    const auto j = nlohmann::json::parse(in);
    cram::host_mlm_batch hb;
    hb.batch = j.at("batch").get<int>();
    hb.seq = j.at("seq").get<int>();
    hb.ids = j.at("ids").get<std::vector<std::int32_t>>();
    hb.masked_positions = j.at("masked_positions").get<std::vector<std::int32_t>>();
    hb.masked_targets = j.at("masked_targets").get<std::vector<std::int32_t>>();
    CRAM_CHECK(hb.ids.size() == std::size_t(hb.batch) * std::size_t(hb.seq), a.batch, ": ids has ", hb.ids.size(),
               " entries, expected batch * seq");

    // the same batch masked by cram's own code from the raw tokens, when the file carries them
    nlohmann::json masking = nullptr;
    if (j.contains("tokens")) {
        const auto tokens = j.at("tokens").get<std::vector<std::int32_t>>();
        cram::masking_options mo;
        mo.mask_id = j.at("mask_id").get<std::int32_t>();
        mo.vocab = C.vocab;
        mo.random_low = j.at("random_low").get<std::int32_t>();
        const auto ref = cram::mask_batch(tokens.data(), hb.batch, hb.seq, mo, j.at("seed").get<std::uint64_t>(),
                                          j.at("first_sequence").get<std::uint64_t>());
        masking = {{"ids_equal", ref.ids == hb.ids},
                   {"positions_equal", ref.masked_positions == hb.masked_positions},
                   {"targets_equal", ref.masked_targets == hb.masked_targets}};
    }

    using backend = cram::cpu::backend<T>;
    typename backend::context ctx;
    cram::train::training_state<backend> state(ctx, layout);
    model_t model(ctx, cram::bind_bert<C, backend>(state), hb.batch, hb.seq);
    state.load_params(params.data());
    model.mlm_forward_backward(hb.view());
    const double loss = model.take_mlm_loss();

    nlohmann::ordered_json out;
    out["impl"] = "cram";
    out["preset"] = a.preset;
    out["dtype"] = a.dtype;
    out["loss"] = loss;
    out["masking_matches_cram"] = masking;
    nlohmann::ordered_json norms = nlohmann::ordered_json::object();
    const T* g = state.grads();
    for (const auto& t : layout.tensors())
        norms[t.name] = std::sqrt(cram::cpu::backend<T>::sum_squares(ctx, g + t.offset, cram::index_t(t.size)));
    out["grad_norms"] = norms;
    if (!a.grads_out.empty())
        cram::train::write_safetensors(a.grads_out, cram::train::layout_entries(layout, g, ""), {});
    std::cout << out.dump() << "\n";
    return 0;
}

template <cram::bert_config C>
int dispatch(const args& a) {
    if (a.dtype == "double") return run<C, double>(a);
    if (a.dtype == "float") return run<C, float>(a);
    CRAM_THROW("--dtype must be double or float, got '", a.dtype, "'");
}

}  // namespace

int main(int argc, char** argv) {
    args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "peer_parity: %s needs a value\n", k.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (k == "--preset") a.preset = val();
        else if (k == "--checkpoint") a.checkpoint = val();
        else if (k == "--batch") a.batch = val();
        else if (k == "--dtype") a.dtype = val();
        else if (k == "--grads-out") a.grads_out = val();
        else {
            std::fprintf(stderr,
                         "usage: peer_parity --preset crammed_tiny|crammed_mini|crammed_bert --checkpoint "
                         "CHECKPOINT_DIR --batch batch.json [--dtype double|float] [--grads-out FILE]\n");
            return 2;
        }
    }
    try {
        if (a.checkpoint.empty() || a.batch.empty()) CRAM_THROW("--checkpoint and --batch are required");
        if (a.preset == "crammed_tiny") return dispatch<cram::presets::crammed_tiny>(a);
        if (a.preset == "crammed_mini") return dispatch<cram::presets::crammed_mini>(a);
        if (a.preset == "crammed_bert") return dispatch<cram::presets::crammed_bert>(a);
        CRAM_THROW("unknown preset '", a.preset, "' (crammed_tiny, crammed_mini, crammed_bert)");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "peer_parity: %s\n", e.what());
        return 1;
    }
}
