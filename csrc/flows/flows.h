#pragma once

#include <cstdint>

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

void coupling_forward_cuda(const CouplingArgs& a, int dtype, void* y, void* logdet, int device,
                           uintptr_t cuda_stream);
void coupling_backward_cuda(const CouplingArgs& a, int dtype, const void* gy, int64_t sgy, const void* gl,
                            void* gx, void* gv, int device, uintptr_t cuda_stream);

}  // namespace flows
}  // namespace gencore
