// Affine coupling on CUDA. Forward: one warp (D <= 256) or one block per sample, the
// log-determinant reduced with CUB (WarpReduce / BlockReduce); with one block per sample each
// thread keeps a compensated (Neumaier) sum, so the error does not grow with D. Backward:
// grid-stride over elements.
#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

#include <stdexcept>

#include "common/compensated_sum.cuh"
#include "common/cuda_utils.cuh"
#include "common/gencore.h"
#include "flows/flows.h"
#include "flows/flows_math.h"

namespace gencore {
namespace flows {
namespace {

constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;

template <typename T, int C, bool Inv>
__global__ void forward_warp_kernel(CouplingArgs a, T* y, T* logdet) {
  using A = acc_t<T>;
  using WR = cub::WarpReduce<A>;
  __shared__ typename WR::TempStorage tmp[kWarps];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const T* x = static_cast<const T*>(a.x);
  const T* t = static_cast<const T*>(a.t);
  const T* v = static_cast<const T*>(a.v);
  const A c = A(a.c);
  for (int64_t i = int64_t(blockIdx.x) * kWarps + warp; i < a.n; i += int64_t(gridDim.x) * kWarps) {
    A sum = A(0);
    for (int64_t j = lane; j < a.D; j += 32) {
      A yv;
      sum += coupling_value<C, Inv, A>(load(x + i * a.sx, j), load(t + i * a.st, j), load(v + i * a.sv, j), c, yv);
      store(y + i * a.D, j, yv);
    }
    const A tot = WR(tmp[warp]).Sum(sum);
    if (lane == 0) store(logdet, i, Inv ? -tot : tot);
  }
}

// One element per sample: no reduction needed.
template <typename T, int C, bool Inv>
__global__ void forward_flat1_kernel(CouplingArgs a, T* y, T* logdet) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(a.x);
  const T* t = static_cast<const T*>(a.t);
  const T* v = static_cast<const T*>(a.v);
  const A c = A(a.c);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < a.n; i += int64_t(gridDim.x) * blockDim.x) {
    A yv;
    const A s = coupling_value<C, Inv, A>(load(x, i * a.sx), load(t, i * a.st), load(v, i * a.sv), c, yv);
    store(y, i, yv);
    store(logdet, i, Inv ? -s : s);
  }
}

template <typename T, int C, bool Inv>
__global__ void forward_block_kernel(CouplingArgs a, T* y, T* logdet) {
  using A = acc_t<T>;
  using BR = cub::BlockReduce<A, kBlock>;
  __shared__ typename BR::TempStorage tmp;
  const T* x = static_cast<const T*>(a.x);
  const T* t = static_cast<const T*>(a.t);
  const T* v = static_cast<const T*>(a.v);
  const A c = A(a.c);
  for (int64_t i = blockIdx.x; i < a.n; i += gridDim.x) {
    cuda::CompensatedSum<A> sum;
    for (int64_t j = threadIdx.x; j < a.D; j += kBlock) {
      A yv;
      sum.add(coupling_value<C, Inv, A>(load(x + i * a.sx, j), load(t + i * a.st, j), load(v + i * a.sv, j), c, yv));
      store(y + i * a.D, j, yv);
    }
    const A s = BR(tmp).Sum(sum.s);
    __syncthreads();  // tmp is reused for the compensations
    const A tot = cuda::compensated_total(s, BR(tmp).Sum(sum.c));
    if (threadIdx.x == 0) store(logdet, i, Inv ? -tot : tot);
    __syncthreads();  // tmp is reused by the next sample
  }
}

template <typename T, int C, bool Inv>
__global__ void backward_kernel(CouplingArgs a, const T* gy, int64_t sgy, const T* gl, T* gx, T* gv) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(a.x);
  const T* t = static_cast<const T*>(a.t);
  const T* v = static_cast<const T*>(a.v);
  const A c = A(a.c);
  const int64_t total = a.n * a.D;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = k / a.D;
    const int64_t j = k - i * a.D;
    A dx, dv;
    coupling_grad<C, Inv, A>(load(gy + i * sgy, j), load(gl, i), load(x + i * a.sx, j),
                             Inv ? load(t + i * a.st, j) : A(0), load(v + i * a.sv, j), c, dx, dv);
    store(gx, k, dx);
    store(gv, k, dv);
  }
}

template <typename T, int C, bool Inv>
void launch_forward(const CouplingArgs& a, void* y, void* logdet, cudaStream_t s) {
  if (a.D == 1) {
    forward_flat1_kernel<T, C, Inv><<<cuda::grid_for(a.n, kBlock), kBlock, 0, s>>>(a, static_cast<T*>(y),
                                                                                  static_cast<T*>(logdet));
  } else if (a.D <= 256) {
    const int64_t blocks = (a.n + kWarps - 1) / kWarps;
    const unsigned grid = unsigned(blocks < 65535LL * 16 ? blocks : 65535LL * 16);
    forward_warp_kernel<T, C, Inv><<<grid, kBlock, 0, s>>>(a, static_cast<T*>(y), static_cast<T*>(logdet));
  } else {
    const unsigned grid = unsigned(a.n < 65535LL * 16 ? a.n : 65535LL * 16);
    forward_block_kernel<T, C, Inv><<<grid, kBlock, 0, s>>>(a, static_cast<T*>(y), static_cast<T*>(logdet));
  }
  GENCORE_CUDA_CHECK_LAUNCH("affine coupling forward");
}

template <typename T, int C, bool Inv>
void launch_backward(const CouplingArgs& a, const void* gy, int64_t sgy, const void* gl, void* gx, void* gv,
                     cudaStream_t s) {
  const unsigned grid = cuda::grid_for(a.n * a.D);
  backward_kernel<T, C, Inv><<<grid, kBlock, 0, s>>>(a, static_cast<const T*>(gy), sgy, static_cast<const T*>(gl),
                                                    static_cast<T*>(gx), static_cast<T*>(gv));
  GENCORE_CUDA_CHECK_LAUNCH("affine coupling backward");
}

template <typename T, typename F>
void by_clamp_dir(int clamp, bool inv, F&& f) {
  switch (clamp) {
    case kNone: return inv ? f.template operator()<T, kNone, true>() : f.template operator()<T, kNone, false>();
    case kAtan: return inv ? f.template operator()<T, kAtan, true>() : f.template operator()<T, kAtan, false>();
    case kTanh: return inv ? f.template operator()<T, kTanh, true>() : f.template operator()<T, kTanh, false>();
    case kSigmoid:
      return inv ? f.template operator()<T, kSigmoid, true>() : f.template operator()<T, kSigmoid, false>();
    default: throw std::invalid_argument("unknown clamp code");
  }
}

template <typename F>
void by_dtype(int dtype, int clamp, bool inv, F&& f) {
  switch (dtype) {
    case kFloat32: return by_clamp_dir<float>(clamp, inv, f);
    case kFloat64: return by_clamp_dir<double>(clamp, inv, f);
    case kFloat16: return by_clamp_dir<half_t>(clamp, inv, f);
    case kBFloat16: return by_clamp_dir<bf16_t>(clamp, inv, f);
    default: throw std::invalid_argument("unsupported dtype code");
  }
}

struct ForwardLauncher {
  const CouplingArgs& a;
  void* y;
  void* logdet;
  cudaStream_t s;
  template <typename T, int C, bool Inv>
  void operator()() const { launch_forward<T, C, Inv>(a, y, logdet, s); }
};

struct BackwardLauncher {
  const CouplingArgs& a;
  const void* gy;
  int64_t sgy;
  const void* gl;
  void* gx;
  void* gv;
  cudaStream_t s;
  template <typename T, int C, bool Inv>
  void operator()() const { launch_backward<T, C, Inv>(a, gy, sgy, gl, gx, gv, s); }
};

}  // namespace

void run_cuda(const CouplingForward& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  by_dtype(at.dtype, a.clamp, a.inverse, ForwardLauncher{a, a.y, a.logdet, cuda::as_stream(at.cuda_stream)});
}

void run_cuda(const CouplingBackward& a, const Launch& at) {
  cuda::DeviceGuard guard(at.device);
  by_dtype(at.dtype, a.clamp, a.inverse,
           BackwardLauncher{a, a.gy, a.sgy, a.gl, a.gx, a.gv, cuda::as_stream(at.cuda_stream)});
}

}  // namespace flows
}  // namespace gencore
