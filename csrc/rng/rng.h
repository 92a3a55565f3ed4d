// Launch parameters of the noise kernels (CPU and CUDA share them).
#pragma once

#include <cstdint>

#include "common/launch.h"

namespace gencore {
namespace rng {

// Fills out[i * D + j] (i < n, j < D) with noise-contract draws for sample `sample0 + i`:
// standard normals, or uniforms in (0, 1) when `uniform` is set.
struct FillArgs : RowNoise {
  void* out = nullptr;  // contiguous (n, D) in the launch dtype
  bool uniform = false;
};

void run_cpu(const FillArgs& a, const Launch& at);
void run_cuda(const FillArgs& a, const Launch& at);

// Host utilities (CPU only), for the tests and the pure-PyTorch reference.
// Raw Philox words: counters (n, 4) and outputs (n, 4) as int64 holding uint32 values.
void philox_words(const int64_t* counter, uint64_t k0, uint64_t k1, int64_t n, int64_t* out);
// float32 <-> float16/bfloat16 with the kernels' own rounding.
void cast_from_float(const float* src, void* dst, int dtype, int64_t n);
void cast_to_float(const void* src, int dtype, float* dst, int64_t n);

}  // namespace rng
}  // namespace gencore
