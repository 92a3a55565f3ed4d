// Launch parameters of the affine-coupling kernels (CPU and CUDA share them).
#pragma once

#include <cstdint>

#include "common/launch.h"

namespace gencore {
namespace flows {

// Per-tensor layout: sample i of a tensor starts at ptr + i * row_stride (elements) and its
// D elements are contiguous. Outputs (y, logdet, grads) are contiguous.
struct CouplingArgs {
  const void* x;
  const void* t;
  const void* v;  // log_scale (before the squash)
  int64_t sx, st, sv;
  int64_t n, D;
  int clamp;
  double c;
  bool inverse;
};

// y = x * exp(s) + t (or the inverse) and logdet = sum(s) per sample.
struct CouplingForward : CouplingArgs {
  void* y;       // out (n, D)
  void* logdet;  // out (n,)
};

// Gradients wrt x and log_scale (the shift's gradient is grad_y, or -grad_x for the inverse).
struct CouplingBackward : CouplingArgs {
  const void* gy;  // grad_y, rows gy + i * sgy
  int64_t sgy;
  const void* gl;  // grad_logdet (n,)
  void* gx;        // out (n, D)
  void* gv;        // out (n, D)
};

void run_cpu(const CouplingForward& a, const Launch& at);
void run_cpu(const CouplingBackward& a, const Launch& at);
void run_cuda(const CouplingForward& a, const Launch& at);
void run_cuda(const CouplingBackward& a, const Launch& at);

}  // namespace flows
}  // namespace gencore
