#pragma once

#include <cstdint>

namespace gencore {
namespace rng {

// Fills out[i * D + j] (i < n, j < D) with noise-contract draws for sample `sample0 + i`:
// standard normals, or uniforms in (0, 1) when `uniform` is set.
void fill_cuda(void* out, int dtype, int64_t n, int64_t D, uint64_t seed, uint32_t stream,
               uint64_t sample0, bool uniform, int device, uintptr_t cuda_stream);

}  // namespace rng
}  // namespace gencore
