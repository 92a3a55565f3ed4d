// Fused diffusion steps and forward noising on CUDA: grid-stride kernels over the same
// per-element math as the CPU (diffusion_math.h). Without in-kernel noise one thread handles
// one element; with Philox noise one thread handles a block of four elements (one noise_block).
#include <limits>
#include <stdexcept>

#include "common/cuda_utils.cuh"
#include "common/gencore.h"
#include "common/philox.h"
#include "diffusion/diffusion.h"

namespace gencore {
namespace diffusion {
namespace {

// History inputs and the aux output are runtime choices here (uniform branches in a
// bandwidth-bound kernel); absent history inputs read as 0 with coefficient 0.
template <typename T, bool Guided>
__device__ __forceinline__ void element(const StepArgs& a, const Coef<acc_t<T>>& k, acc_t<T> g, acc_t<T> r,
                                        int64_t idx, acc_t<T> z) {
  using A = acc_t<T>;
  const A c = load(static_cast<const T*>(a.c), idx);
  const A m = Guided ? guide(c, A(load(static_cast<const T*>(a.u), idx)), g) : c;
  A h[kMaxHistory];
#pragma unroll
  for (int j = 0; j < kMaxHistory; ++j) h[j] = j < a.n_history ? A(load(static_cast<const T*>(a.h[j]), idx)) : A(0);
  A prev, x0, aux;
  step_element<kMaxHistory>(k, r, A(load(static_cast<const T*>(a.x), idx)), m, z, h, prev, x0, aux);
  store(static_cast<T*>(a.prev), idx, prev);
  store(static_cast<T*>(a.x0), idx, x0);
  if (a.aux) store(static_cast<T*>(a.aux), idx, aux);
}

template <typename T>
__device__ __forceinline__ acc_t<T> clip_range(const StepArgs& a) {
  using A = acc_t<T>;
  return a.clip > 0 ? A(a.clip) : A(INFINITY);
}

template <typename T, bool Guided, int Noise>
__global__ void step_kernel(const StepArgs a) {
  using A = acc_t<T>;
  const A g = A(a.guidance);
  const A r = clip_range<T>(a);
  const int64_t total = a.n * a.D;
  const Coef<A> shared = make_coef<A>(a.coef);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx / a.D;
    const Coef<A> k = a.rows ? make_coef<A>(a.rows + i * kNumCoef) : shared;
    const A z = Noise == kExplicitNoise ? A(load(static_cast<const T*>(a.z), idx)) : A(0);
    element<T, Guided>(a, k, g, r, idx, z);
  }
}

template <typename T, bool Guided>
__global__ void step_philox_kernel(const StepArgs a) {
  using A = acc_t<T>;
  const A g = A(a.guidance);
  const A r = clip_range<T>(a);
  const int64_t nb = (a.D + 3) / 4;
  const int64_t total = a.n * nb;
  const Coef<A> shared = make_coef<A>(a.coef);
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < total; u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = u / nb;
    const int64_t b = u - i * nb;
    const Coef<A> k = a.rows ? make_coef<A>(a.rows + i * kNumCoef) : shared;
    A zz[4];
    normal4(noise_block(a.seed, a.stream, a.sample0 + uint64_t(i), uint32_t(b)), zz);
    const int64_t j0 = 4 * b;
    const int64_t cnt = a.D - j0 < 4 ? a.D - j0 : 4;
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (q < cnt) element<T, Guided>(a, k, g, r, i * a.D + j0 + q, zz[q]);
  }
}

template <typename T, bool Guided>
void launch(const StepArgs& a, cudaStream_t s) {
  switch (a.noise_mode) {
    case kNoNoise:
      step_kernel<T, Guided, kNoNoise><<<cuda::grid_for(a.n * a.D), 256, 0, s>>>(a);
      break;
    case kExplicitNoise:
      step_kernel<T, Guided, kExplicitNoise><<<cuda::grid_for(a.n * a.D), 256, 0, s>>>(a);
      break;
    case kPhiloxNoise:
      step_philox_kernel<T, Guided><<<cuda::grid_for(a.n * ((a.D + 3) / 4)), 256, 0, s>>>(a);
      break;
    default: throw std::invalid_argument("diffusion_step: unknown noise mode");
  }
  GENCORE_CUDA_CHECK_LAUNCH("diffusion step");
}

template <typename T>
void step_t(const StepArgs& a, cudaStream_t s) {
  if (a.u) launch<T, true>(a, s);
  else launch<T, false>(a, s);
}

template <typename T, bool Philox>
__global__ void q_sample_kernel(const QSampleArgs a) {
  using A = acc_t<T>;
  const int64_t nb = (a.D + 3) / 4;
  const int64_t total = a.n * nb;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < total; u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = u / nb;
    const int64_t b = u - i * nb;
    const A ca = A(a.ab[2 * i]);
    const A cb = A(a.ab[2 * i + 1]);
    A zz[4];
    if (Philox) normal4(noise_block(a.seed, a.stream, a.sample0 + uint64_t(i), uint32_t(b)), zz);
    const int64_t j0 = 4 * b;
    const int64_t cnt = a.D - j0 < 4 ? a.D - j0 : 4;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (q >= cnt) continue;
      const int64_t idx = i * a.D + j0 + q;
      const A z = Philox ? zz[q] : A(load(static_cast<const T*>(a.z), idx));
      store(static_cast<T*>(a.out), idx, q_sample_element(ca, cb, A(load(static_cast<const T*>(a.x0), idx)), z));
      if (Philox) store(static_cast<T*>(a.z_out), idx, z);
    }
  }
}

template <typename T>
void q_sample_t(const QSampleArgs& a, cudaStream_t s) {
  const unsigned grid = cuda::grid_for(a.n * ((a.D + 3) / 4));
  if (a.z) q_sample_kernel<T, false><<<grid, 256, 0, s>>>(a);
  else q_sample_kernel<T, true><<<grid, 256, 0, s>>>(a);
  GENCORE_CUDA_CHECK_LAUNCH("q_sample");
}

}  // namespace

void run_cuda(const StepArgs& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  const cudaStream_t s = cuda::as_stream(at.cuda_stream);
  return dispatch_dtype(at.dtype, [&](auto tag) {
    using T = decltype(tag);
    return step_t<T>(a, s);
  });
}

void run_cuda(const QSampleArgs& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  const cudaStream_t s = cuda::as_stream(at.cuda_stream);
  return dispatch_dtype(at.dtype, [&](auto tag) {
    using T = decltype(tag);
    return q_sample_t<T>(a, s);
  });
}

}  // namespace diffusion
}  // namespace gencore
