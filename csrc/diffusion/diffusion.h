// Launch parameters of the fused diffusion kernels (CPU and CUDA share them).
#pragma once

#include <cstdint>

#include "diffusion/diffusion_math.h"

namespace gencore {
namespace diffusion {

// The (n, D) shape and the noise-contract source shared by every diffusion kernel.
struct RowNoise {
  int64_t n = 0, D = 0;
  uint64_t seed = 0;
  uint32_t stream = 0;
  uint64_t sample0 = 0;
};

struct StepArgs : RowNoise {
  const void* x = nullptr;     // sample (n, D)
  const void* c = nullptr;     // model output (conditional when guided)
  const void* u = nullptr;     // unconditional output, or null (unguided)
  const void* z = nullptr;     // explicit noise (noise_mode == kExplicitNoise)
  const void* h[kMaxHistory] = {};  // history inputs h1..h4 (the first n_history are set)
  int n_history = 0;
  void* prev = nullptr;        // out: next sample
  void* x0 = nullptr;          // out: x0 prediction
  void* aux = nullptr;         // out: derivative (Heun) or null
  const double* rows = nullptr;  // per-sample coefficients (n, kNumCoef), or null
  double coef[kNumCoef] = {};    // coefficients shared by all samples (rows == null)
  double guidance = 1.0;
  double clip = 0.0;             // clamp range; <= 0 or inf: no clipping
  int noise_mode = kNoNoise;
};

struct QSampleArgs : RowNoise {
  const void* x0 = nullptr;    // (n, D)
  const void* z = nullptr;     // explicit noise (same dtype as x0) or null (Philox)
  const double* ab = nullptr;  // (n, 2): sqrt(abar_t), sqrt(1 - abar_t) per sample
  void* out = nullptr;         // x_t
  void* z_out = nullptr;       // drawn noise (Philox) or null
};

// CPU kernels (diffusion_cpu.cpp).
void run_cpu(const StepArgs& a, int dtype, int threads);
void run_cpu(const QSampleArgs& a, int dtype, int threads);

// CUDA launchers (CUDA builds only; diffusion_cuda.cu).
void run_cuda(const StepArgs& a, int dtype, int device, uintptr_t cuda_stream);
void run_cuda(const QSampleArgs& a, int dtype, int device, uintptr_t cuda_stream);

}  // namespace diffusion
}  // namespace gencore
