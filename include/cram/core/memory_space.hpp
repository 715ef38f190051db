// The memory-space tag of host pointers. Batch views (model/batch.hpp) carry the space their pointers live
// in, so a model accepts only batches in its backend's memory; device backends define their own tags
// (cram::cuda::device_memory).
#pragma once

namespace cram {

struct host_memory {};

}  // namespace cram
