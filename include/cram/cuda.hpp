// Umbrella header of the CUDA backend, every header of cram/cuda/ (named after the folder it gathers, as
// every umbrella header is). nvcc only; cram.hpp includes it under __CUDACC__ with CRAM_WITH_CUDA, which
// linking cram::cuda defines. See docs/cuda.md.
#pragma once

#include "cram/cuda/activation.hpp"
#include "cram/cuda/adamw.hpp"
#include "cram/cuda/attention.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/dropout.hpp"
#include "cram/cuda/elementwise.hpp"
#include "cram/cuda/embedding.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/cuda/layernorm.hpp"
#include "cram/cuda/loss.hpp"
#include "cram/cuda/masking.hpp"
#include "cram/cuda/memory.hpp"
