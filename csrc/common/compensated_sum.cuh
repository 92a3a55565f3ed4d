// Compensated (Neumaier) summation for the CUDA row sums: each thread's running sum keeps the
// rounding errors of its additions, so long rows sum accurately before the block reduction.
#pragma once

namespace gencore {
namespace cuda {

// Running sum s with the rounding errors of its additions collected in c.
template <typename A>
struct CompensatedSum {
  A s = A(0);
  A c = A(0);

  __device__ __forceinline__ void add(A x) {
    const A t = s + x;
    c += (fabs(s) >= fabs(x)) ? (s - t) + x : (x - t) + s;
    s = t;
  }
};

// s + c, or s alone once it is inf or NaN (the compensation is then NaN).
template <typename A>
__device__ __forceinline__ A compensated_total(A s, A c) {
  return isfinite(s) ? s + c : s;
}

}  // namespace cuda
}  // namespace gencore
