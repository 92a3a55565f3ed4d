// CPU parallel loop over [0, n) on the OpenMP runtime torch also uses. Work is split in
// contiguous static chunks; kernels compute every element independently (or reduce one
// sample per iteration), so results never depend on the thread count.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace gencore {

template <class F>
void parallel_for(int64_t n, int64_t grain, int threads, const F& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int nt = int(std::max<int64_t>(1, std::min<int64_t>(threads, max_chunks)));
  if (nt <= 1 || omp_in_parallel()) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    const int got = omp_get_num_threads();
    const int64_t chunk = (n + got - 1) / got;
    const int64_t b = int64_t(tid) * chunk;
    const int64_t e = std::min(n, b + chunk);
    if (b < e) f(b, e);
  }
}

}  // namespace gencore
