// Batch views say where their memory lives: a model takes batches in its backend's memory space only, and
// batch_upload is the one way there. On the CPU backend (host memory) the upload copies nothing.
#include <cstdint>
#include <vector>

#include "cram/cram.hpp"
#include "test_support.hpp"

namespace {

constexpr cram::bert_config small{.vocab = 50, .hidden = 16, .heads = 2, .layers = 1, .intermediate = 32,
                                  .max_seq = 8};
using backend = cram::cpu::backend<float>;
struct other_device_memory {};  // a device space the CPU model must refuse

template <class Model, class Batch>
concept encodes = requires(Model& m, const Batch& b) { m.encode(b); };
template <class Model, class Batch>
concept trains_mlm = requires(Model& m, const Batch& b) { m.mlm_forward_backward(b); };
static_assert(encodes<cram::cpu_bert<small>, cram::token_batch<cram::host_memory>>);
static_assert(!encodes<cram::cpu_bert<small>, cram::token_batch<other_device_memory>>);
static_assert(trains_mlm<cram::cpu_bert<small>, cram::mlm_batch<cram::host_memory>>);
static_assert(!trains_mlm<cram::cpu_bert<small>, cram::mlm_batch<other_device_memory>>);
static_assert(!trains_mlm<cram::cpu_bert<small>, cram::host_mlm_batch>);  // owning batches go through view/upload

TEST_CASE("batch_upload on the CPU backend hands the host arrays through unchanged") {
    backend::context ctx;
    cram::batch_upload<backend> upload(ctx);
    cram::host_mlm_batch m;
    m.batch = 1;
    m.seq = 4;
    m.ids = {2, 9, 4, 3};
    m.masked_positions = {2};
    m.masked_targets = {11};
    const auto v = upload(m);
    CHECK(v.ids == m.ids.data());
    CHECK(v.type_ids == nullptr);
    CHECK(v.num_masked == 1);
    CHECK(v.masked_positions == m.masked_positions.data());
    CHECK(v.masked_targets == m.masked_targets.data());

    cram::host_labeled_batch l;
    l.tokens.batch = 2;
    l.tokens.seq = 2;
    l.tokens.ids = {2, 3, 2, 0};
    l.tokens.lengths = {2, 1};
    l.targets = {0.5f, 1.5f};
    const auto lv = upload(l);
    CHECK(lv.tokens.ids == l.tokens.ids.data());
    CHECK(lv.tokens.lengths == l.tokens.lengths.data());
    CHECK(lv.labels == nullptr);  // a regression batch carries no class labels
    CHECK(lv.targets == l.targets.data());
}

}  // namespace
