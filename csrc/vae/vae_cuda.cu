// Reparameterized sampling and per-sample Gaussian KL on CUDA. With KL: one thread block per
// sample (grid-stride over samples); each thread keeps a compensated (Neumaier) sum of its
// terms, and CUB block reductions add the threads' sums and compensations, so the error does
// not grow with the number of elements per sample. Without KL (z only)
// and for the backward: one thread per block of four elements, grid-stride. eps comes from
// noise_block + normal4 (noise contract) or from the given noise array.
#include <cub/block/block_reduce.cuh>

#include "common/compensated_sum.cuh"
#include "common/cuda_utils.cuh"
#include "common/gencore.h"
#include "common/philox.h"
#include "vae/vae.h"
#include "vae/vae_math.h"

namespace gencore {
namespace vae {
namespace {

template <typename T, bool Z, bool HasNoise, int BLOCK>
__global__ void forward_kl_kernel(const T* __restrict__ mu, const T* __restrict__ lv, const T* __restrict__ nz,
                                  T* __restrict__ z, T* __restrict__ kl, int64_t n, int64_t D, uint64_t seed,
                                  uint32_t stream, uint64_t sample0) {
  using A = acc_t<T>;
  using Reduce = cub::BlockReduce<A, BLOCK>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t nb = (D + 3) / 4;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int64_t base = row * D;
    cuda::CompensatedSum<A> part;
    for (int64_t b = threadIdx.x; b < nb; b += BLOCK) {
      A ev[4] = {A(0), A(0), A(0), A(0)};
      if (Z && !HasNoise) normal4(noise_block(seed, stream, sample0 + uint64_t(row), uint32_t(b)), ev);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t j = 4 * b + q;
        if (j < D) {
          const A m = load(mu, base + j);
          const A l = load(lv, base + j);
          const A sd = stddev(l);
          if (Z) store(z, base + j, sample(m, sd, HasNoise ? A(load(nz, base + j)) : ev[q]));
          part.add(kl2_term(m, l, sd));
        }
      }
    }
    const A s = Reduce(tmp).Sum(part.s);
    __syncthreads();  // tmp is reused for the compensations
    const A c = Reduce(tmp).Sum(part.c);
    if (threadIdx.x == 0) store(kl, row, A(0.5) * cuda::compensated_total(s, c));
    __syncthreads();  // tmp is reused by the next sample
  }
}

template <typename T, bool HasNoise>
__global__ void forward_z_kernel(const T* __restrict__ mu, const T* __restrict__ lv, const T* __restrict__ nz,
                                 T* __restrict__ z, int64_t n, int64_t D, uint64_t seed, uint32_t stream,
                                 uint64_t sample0) {
  using A = acc_t<T>;
  const int64_t nb = (D + 3) / 4;
  const int64_t total = n * nb;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = k / nb;
    const int64_t b = k - row * nb;
    A ev[4] = {A(0), A(0), A(0), A(0)};
    if (!HasNoise) normal4(noise_block(seed, stream, sample0 + uint64_t(row), uint32_t(b)), ev);
    const int64_t base = row * D;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = 4 * b + q;
      if (j < D) {
        const A sd = stddev(A(load(lv, base + j)));
        store(z, base + j, sample(A(load(mu, base + j)), sd, HasNoise ? A(load(nz, base + j)) : ev[q]));
      }
    }
  }
}

template <typename T, bool GZ, bool GK, bool HasNoise>
__global__ void backward_kernel(const T* __restrict__ mu, const T* __restrict__ lv, const T* __restrict__ nz,
                                const T* __restrict__ gz, const T* __restrict__ gk, T* __restrict__ dmu,
                                T* __restrict__ dlv, int64_t n, int64_t D, uint64_t seed, uint32_t stream,
                                uint64_t sample0) {
  using A = acc_t<T>;
  const int64_t nb = (D + 3) / 4;
  const int64_t total = n * nb;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = k / nb;
    const int64_t b = k - row * nb;
    A ev[4] = {A(0), A(0), A(0), A(0)};
    if (GZ && !HasNoise) normal4(noise_block(seed, stream, sample0 + uint64_t(row), uint32_t(b)), ev);
    const A g_kl = GK ? A(load(gk, row)) : A(0);
    const int64_t base = row * D;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int64_t j = 4 * b + q;
      if (j < D) {
        const A m = load(mu, base + j);
        const A sd = stddev(A(load(lv, base + j)));
        const A g = GZ ? A(load(gz, base + j)) : A(0);
        const A ep = GZ ? (HasNoise ? A(load(nz, base + j)) : ev[q]) : A(0);
        store(dmu, base + j, grad_mu(m, g, g_kl));
        store(dlv, base + j, grad_logvar(sd, ep, g, g_kl));
      }
    }
  }
}

template <typename T, bool Z, bool HasNoise>
void launch_kl(const T* mu, const T* lv, const T* nz, T* z, T* kl, int64_t n, int64_t D, uint64_t seed,
               uint32_t stream, uint64_t sample0, cudaStream_t s) {
  const unsigned grid = unsigned(n < (int64_t(1) << 20) ? n : (int64_t(1) << 20));
  if ((D + 3) / 4 >= 128) {
    forward_kl_kernel<T, Z, HasNoise, 128><<<grid, 128, 0, s>>>(mu, lv, nz, z, kl, n, D, seed, stream, sample0);
  } else {
    forward_kl_kernel<T, Z, HasNoise, 32><<<grid, 32, 0, s>>>(mu, lv, nz, z, kl, n, D, seed, stream, sample0);
  }
}

template <typename T>
void forward_t(const ForwardArgs& a, cudaStream_t s) {
  const T* mu = static_cast<const T*>(a.mu);
  const T* lv = static_cast<const T*>(a.logvar);
  const T* nz = static_cast<const T*>(a.noise);
  T* z = static_cast<T*>(a.z);
  T* kl = static_cast<T*>(a.kl);
  const int64_t n = a.n, D = a.D;
  const uint64_t seed = a.seed, sample0 = a.sample0;
  const uint32_t stream = a.stream;
  if (kl) {
    if (z && nz) launch_kl<T, true, true>(mu, lv, nz, z, kl, n, D, seed, stream, sample0, s);
    else if (z) launch_kl<T, true, false>(mu, lv, nz, z, kl, n, D, seed, stream, sample0, s);
    else launch_kl<T, false, false>(mu, lv, nz, z, kl, n, D, seed, stream, sample0, s);
  } else {
    const unsigned grid = cuda::grid_for(n * ((D + 3) / 4));
    if (nz) forward_z_kernel<T, true><<<grid, 256, 0, s>>>(mu, lv, nz, z, n, D, seed, stream, sample0);
    else forward_z_kernel<T, false><<<grid, 256, 0, s>>>(mu, lv, nz, z, n, D, seed, stream, sample0);
  }
  GENCORE_CUDA_CHECK_LAUNCH("vae forward");
}

template <typename T, bool GZ, bool GK>
void launch_backward(const T* mu, const T* lv, const T* nz, const T* gz, const T* gk, T* dmu, T* dlv, int64_t n,
                     int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0, cudaStream_t s) {
  const unsigned grid = cuda::grid_for(n * ((D + 3) / 4));
  if (nz) {
    backward_kernel<T, GZ, GK, true><<<grid, 256, 0, s>>>(mu, lv, nz, gz, gk, dmu, dlv, n, D, seed, stream, sample0);
  } else {
    backward_kernel<T, GZ, GK, false><<<grid, 256, 0, s>>>(mu, lv, nz, gz, gk, dmu, dlv, n, D, seed, stream, sample0);
  }
}

template <typename T>
void backward_t(const BackwardArgs& a, cudaStream_t s) {
  const T* mu = static_cast<const T*>(a.mu);
  const T* lv = static_cast<const T*>(a.logvar);
  const T* nz = static_cast<const T*>(a.noise);
  const T* gz = static_cast<const T*>(a.grad_z);
  const T* gk = static_cast<const T*>(a.grad_kl);
  T* dmu = static_cast<T*>(a.grad_mu);
  T* dlv = static_cast<T*>(a.grad_logvar);
  const int64_t n = a.n, D = a.D;
  const uint64_t seed = a.seed, sample0 = a.sample0;
  const uint32_t stream = a.stream;
  if (gz && gk) launch_backward<T, true, true>(mu, lv, nz, gz, gk, dmu, dlv, n, D, seed, stream, sample0, s);
  else if (gz) launch_backward<T, true, false>(mu, lv, nz, gz, gk, dmu, dlv, n, D, seed, stream, sample0, s);
  else if (gk) launch_backward<T, false, true>(mu, lv, nz, gz, gk, dmu, dlv, n, D, seed, stream, sample0, s);
  else launch_backward<T, false, false>(mu, lv, nz, gz, gk, dmu, dlv, n, D, seed, stream, sample0, s);
  GENCORE_CUDA_CHECK_LAUNCH("vae backward");
}

}  // namespace

void run_cuda(const ForwardArgs& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  const cudaStream_t s = cuda::as_stream(at.cuda_stream);
  dispatch_dtype(at.dtype, [&](auto tag) { forward_t<decltype(tag)>(a, s); });
}

void run_cuda(const BackwardArgs& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  const cudaStream_t s = cuda::as_stream(at.cuda_stream);
  dispatch_dtype(at.dtype, [&](auto tag) { backward_t<decltype(tag)>(a, s); });
}

}  // namespace vae
}  // namespace gencore
