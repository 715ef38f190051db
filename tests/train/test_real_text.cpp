// End to end on real English: the first Wikipedia articles of the shared data (loud skip without them)
// prepared into an 8192-token WordPiece dataset, then crammed_tiny trained on the CPU for a 45 s budget
// measured by a clock that advances 0.25 s per micro-step: 180 micro-steps (~40 s on an idle 2-core machine),
// the same work and the same losses on a slow or loaded machine. An untrained model predicts uniformly
// (loss ln 8192 = 9.01); learning must bring it well below that.
#include <doctest/doctest.h>

#include <cmath>

#include "cram/cpu/backend.hpp"
#include "cram/data/prepare.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/dataset_source.hpp"
#include "cram/train/trainer.hpp"
#include "test_support.hpp"

using namespace cram;

TEST_CASE("crammed_tiny on real text lowers the loss well below ln(vocab)") {
    if (!test::have_shared_data("wiki/wiki-00.jsonl.zst")) return;
    const auto dir = test::scratch_dir("train_real_text");
    data::prepare_options p;
    p.corpus = {test::shared_data() / "wiki/wiki-00.jsonl.zst"};
    p.out = dir / "data";
    p.vocab_size = presets::crammed_tiny.vocab;
    p.max_docs = 250;
    p.val_fraction = 0.05;
    p.threads = 2;
    const auto summary = data::prepare_dataset(p, [](const data::prepare_progress&) {});
    REQUIRE(summary.train_blocks > 1000);

    train::dataset_source train_data(p.out, "train", 128);
    train::dataset_source val_data(p.out, "val", 128);
    train::trainer_options o;
    o.ramp = {8, 16, 0.6};
    o.adamw.lr = 2e-3f;
    o.out = dir / "run";
    o.checkpoint_every = 0;
    o.plain_progress_every = 15;
    o.val_batches = 4;
    double now = 0;
    train::trainer_observers obs;
    obs.after_micro_step = [&] { now += 0.25; };  // exact in binary: 180 micro-steps to the budget
    train::budget_clock clock(45, [&] { return now; });
    cpu::backend<float>::context ctx;
    const auto r = train::train_mlm<presets::crammed_tiny, cpu::backend<float>>(ctx, train_data, o, clock, {}, &val_data, obs);
    const double uniform = std::log(double(presets::crammed_tiny.vocab));
    MESSAGE("crammed_tiny, 180 micro-steps: first loss " << r.first_loss << ", last " << r.final_loss << ", validation "
                                              << r.val_loss << " (uniform " << uniform << "), " << r.steps
                                              << " steps, " << r.tokens << " tokens");
    CHECK(r.micro_steps == 180);
    CHECK(r.first_loss == doctest::Approx(uniform).epsilon(0.05));  // starts near uniform
    CHECK(r.final_loss < 0.8 * uniform);
    CHECK(r.val_loss < 0.8 * uniform);
    CHECK(std::filesystem::exists(dir / "run" / "loss.svg"));
    CHECK(std::filesystem::exists(dir / "run" / "checkpoints"));
}
