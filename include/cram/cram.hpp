// Umbrella header of the whole library (link cram::cram): everything that compiles with a plain C++20
// compiler. The CUDA backend (cram/cuda.hpp) is added when this is compiled by nvcc with CRAM_WITH_CUDA
// (link cram::cuda too).
#pragma once

#include "cram/core/bf16.hpp"
#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/platform.hpp"
#include "cram/core/rng.hpp"
#include "cram/core/status_line.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/cpu/ops.hpp"
#include "cram/model/batch.hpp"
#include "cram/model/bert.hpp"
#include "cram/model/classifier.hpp"
#include "cram/model/config.hpp"
#include "cram/model/loss_meter.hpp"
#include "cram/model/masking.hpp"
#include "cram/model/parameters.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/batch_source.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/dataset_source.hpp"
#include "cram/train/metrics.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/safetensors.hpp"
#include "cram/train/schedule.hpp"
#include "cram/train/trainer.hpp"
#include "cram/data.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/eval/finetune_schedule.hpp"
#include "cram/eval/glue.hpp"
#include "cram/eval/glue_inputs.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/eval/metrics.hpp"
#include "cram/eval/report.hpp"

#if defined(__CUDACC__) && defined(CRAM_WITH_CUDA)
#include "cram/cuda.hpp"
#endif
