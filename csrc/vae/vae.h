#pragma once

#include <cstdint>

namespace gencore {
namespace vae {

// Forward on CUDA. mu, logvar, noise (nullable: draw eps from the noise contract), z and kl
// (each nullable: not wanted) are contiguous (n, D) / (n,) arrays of `dtype`.
void forward_cuda(const void* mu, const void* logvar, const void* noise, void* z, void* kl, int dtype, int64_t n,
                  int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0, int device, uintptr_t cuda_stream);

// Backward on CUDA: gz (n, D) and gk (n,) are nullable (zero gradients).
void backward_cuda(const void* mu, const void* logvar, const void* noise, const void* gz, const void* gk, void* dmu,
                   void* dlogvar, int dtype, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0,
                   int device, uintptr_t cuda_stream);

}  // namespace vae
}  // namespace gencore
