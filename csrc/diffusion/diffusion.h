// Launch parameters of the fused diffusion kernels (CPU and CUDA share them).
#pragma once

#include <cstdint>

#include "common/launch.h"
#include "diffusion/diffusion_math.h"

namespace gencore {
namespace diffusion {

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

// CPU kernels (diffusion_cpu.cpp) and CUDA launchers (CUDA builds only; diffusion_cuda.cu),
// reached through gencore::run_on.
void run_cpu(const StepArgs& a, const Launch& at);
void run_cpu(const QSampleArgs& a, const Launch& at);
void run_cuda(const StepArgs& a, const Launch& at);
void run_cuda(const QSampleArgs& a, const Launch& at);

}  // namespace diffusion
}  // namespace gencore
