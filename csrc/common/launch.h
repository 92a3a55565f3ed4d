// Where a kernel runs and the one router that sends a family's params struct there. Shared by
// every family (host code: the *_bindings.cpp files, the CPU and CUDA entry points).
//
// A family declares, next to its params struct Args (in its own namespace):
//   void run_cpu(const Args& a, const Launch& at);   // *_cpu.cpp: dispatch_dtype + OpenMP loops
//   void run_cuda(const Args& a, const Launch& at);  // *_cuda.cu: DeviceGuard + dispatch_dtype + launch
// and its binding calls run_on(a, at), which picks one by argument-dependent lookup.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "common/gencore.h"

namespace gencore {

// The launch context Python computes once per call (gencore._native.launch_context).
struct Launch {
  int dtype = kFloat32;        // storage dtype code (DType)
  int device = -1;             // CUDA device index, -1 for the CPU
  uintptr_t cuda_stream = 0;   // raw cudaStream_t on `device` (0 on the CPU)
  int threads = 1;             // CPU threads (torch.get_num_threads())
};

// The (n, D) shape and the noise-contract source shared by kernels that draw noise: element j of
// row i depends only on (seed, stream, sample0 + i, j).
struct RowNoise {
  int64_t n = 0, D = 0;
  uint64_t seed = 0;
  uint32_t stream = 0;
  uint64_t sample0 = 0;
};

// Runs the family kernel for params `a` on the CPU or on CUDA device `at.device`.
template <typename Args>
void run_on(const Args& a, const Launch& at) {
  if (at.device >= 0) {
#ifdef GENCORE_WITH_CUDA
    return run_cuda(a, at);
#else
    throw std::runtime_error("gencore was built without CUDA kernels");
#endif
  }
  run_cpu(a, at);
}

}  // namespace gencore
