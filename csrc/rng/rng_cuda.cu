// Counter-based noise on CUDA: one thread per block of four words, grid-stride.
#include <type_traits>

#include "common/cuda_utils.cuh"
#include "common/gencore.h"
#include "common/philox.h"
#include "rng/rng.h"

namespace gencore {
namespace rng {
namespace {

template <typename T, bool Uniform>
__global__ void fill_kernel(T* out, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0) {
  using A = acc_t<T>;
  const int64_t nb = (D + 3) / 4;
  const int64_t total = n * nb;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = k / nb;
    const int64_t b = k - i * nb;
    const u32x4 w = noise_block(seed, stream, sample0 + uint64_t(i), uint32_t(b));
    A v[4];
    if (Uniform) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        if constexpr (sizeof(A) == 8) v[q] = A(uniform_f64(w.v[q]));
        else v[q] = A(uniform_f32(w.v[q]));
      }
    } else {
      normal4(w, v);
    }
    T* row = out + i * D;
    const int64_t j0 = 4 * b;
    const int64_t cnt = D - j0 < 4 ? D - j0 : 4;
    if (Uniform && sizeof(T) == 2) {
#pragma unroll
      for (int q = 0; q < 4; ++q) v[q] = uniform_clamp16(float(v[q]), std::is_same<T, bf16_t>::value);
    }
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (q < cnt) store(row, j0 + q, v[q]);
  }
}

template <typename T>
void launch(const FillArgs& a, cudaStream_t s) {
  const int64_t total = a.n * ((a.D + 3) / 4);
  const unsigned grid = cuda::grid_for(total);
  T* out = static_cast<T*>(a.out);
  if (a.uniform) fill_kernel<T, true><<<grid, 256, 0, s>>>(out, a.n, a.D, a.seed, a.stream, a.sample0);
  else fill_kernel<T, false><<<grid, 256, 0, s>>>(out, a.n, a.D, a.seed, a.stream, a.sample0);
  GENCORE_CUDA_CHECK_LAUNCH("rng fill");
}

}  // namespace

void run_cuda(const FillArgs& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  const cudaStream_t s = cuda::as_stream(at.cuda_stream);
  dispatch_dtype(at.dtype, [&](auto tag) { launch<decltype(tag)>(a, s); });
}

}  // namespace rng
}  // namespace gencore
