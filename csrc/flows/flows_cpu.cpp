// Affine coupling on the CPU: OpenMP over samples, SIMD over the elements of a sample, the
// per-sample log-determinant reduced in the same loop. The sum runs over blocks of kBlock
// consecutive elements: 16 fixed partial lanes combined in a fixed order give a block's sum,
// and block sums are added pairwise in a tree fixed by the block index (Cascade). Results
// depend neither on the thread count nor on the ISA clone picked at load time, and the error
// of a sum grows like log(D) rather than D.
//
// -fno-trapping-math (no effect on results: floating-point exceptions are never observed) lets
// GCC if-convert the branch-free selects of flows_math.h, which is what makes the loops vectorise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "common/cascade.h"
#include "common/gencore.h"
#include "common/parallel.h"
#include "flows/flows.h"
#include "flows/flows_math.h"

namespace gencore {
namespace flows {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kBlock = 256;  // elements per block of a sample's sum: 16 per lane

template <typename A>
A combine(const A* acc) {
  A s8[8], s4[4];
  for (int k = 0; k < 8; ++k) s8[k] = acc[k] + acc[k + 8];
  for (int k = 0; k < 4; ++k) s4[k] = s8[k] + s8[k + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

template <typename T, int C, bool Inv>
GENCORE_SIMD_CLONES acc_t<T> forward_row(const T* __restrict x, const T* __restrict t, const T* __restrict v,
                                         T* __restrict y, int64_t D, acc_t<T> c) {
  using A = acc_t<T>;
  Cascade<A> blocks;
  for (int64_t b0 = 0; b0 < D; b0 += kBlock) {
    const int64_t b1 = std::min(D, b0 + kBlock);
    const int64_t full = b1 - (b1 - b0) % kLanes;
    A acc[kLanes] = {};
    for (int64_t j0 = b0; j0 < full; j0 += kLanes) {
#pragma omp simd
      for (int k = 0; k < kLanes; ++k) {
        A yv;
        acc[k] += coupling_value<C, Inv, A>(load(x, j0 + k), load(t, j0 + k), load(v, j0 + k), c, yv);
        store(y, j0 + k, yv);
      }
    }
    for (int64_t j = full; j < b1; ++j) {
      A yv;
      acc[j - full] += coupling_value<C, Inv, A>(load(x, j), load(t, j), load(v, j), c, yv);
      store(y, j, yv);
    }
    blocks.push(combine(acc));
  }
  const A s = blocks.total();
  return Inv ? -s : s;
}

template <typename T, int C, bool Inv>
GENCORE_SIMD_CLONES void backward_row(const T* __restrict gy, acc_t<T> gl, const T* __restrict x,
                                      const T* __restrict t, const T* __restrict v, T* __restrict gx,
                                      T* __restrict gv, int64_t D, acc_t<T> c) {
  using A = acc_t<T>;
#pragma omp simd
  for (int64_t j = 0; j < D; ++j) {
    A a, b;
    coupling_grad<C, Inv, A>(load(gy, j), gl, load(x, j), Inv ? load(t, j) : A(0), load(v, j), c, a, b);
    store(gx, j, a);
    store(gv, j, b);
  }
}

// One element per sample (the couplings of 2-D flows): a flat loop over samples instead of a
// row loop per sample.
template <typename T, int C, bool Inv>
GENCORE_SIMD_CLONES void forward_flat1(const T* __restrict x, int64_t sx, const T* __restrict t, int64_t st,
                                       const T* __restrict v, int64_t sv, T* __restrict y, T* __restrict ld,
                                       int64_t b, int64_t e, acc_t<T> c) {
  using A = acc_t<T>;
#pragma omp simd
  for (int64_t i = b; i < e; ++i) {
    A yv;
    const A s = coupling_value<C, Inv, A>(load(x, i * sx), load(t, i * st), load(v, i * sv), c, yv);
    store(y, i, yv);
    store(ld, i, Inv ? -s : s);
  }
}

template <typename T, int C, bool Inv>
GENCORE_SIMD_CLONES void backward_flat1(const T* __restrict gy, int64_t sgy, const T* __restrict gl,
                                        const T* __restrict x, int64_t sx, const T* __restrict t, int64_t st,
                                        const T* __restrict v, int64_t sv, T* __restrict gx, T* __restrict gv,
                                        int64_t b, int64_t e, acc_t<T> c) {
  using A = acc_t<T>;
#pragma omp simd
  for (int64_t i = b; i < e; ++i) {
    A a, d;
    coupling_grad<C, Inv, A>(load(gy, i * sgy), load(gl, i), load(x, i * sx), Inv ? load(t, i * st) : A(0),
                             load(v, i * sv), c, a, d);
    store(gx, i, a);
    store(gv, i, d);
  }
}

int64_t grain_for(int64_t D) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)); }

template <typename T, int C, bool Inv>
void forward_impl(const CouplingArgs& a, void* y, void* logdet, int threads) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(a.x);
  const T* t = static_cast<const T*>(a.t);
  const T* v = static_cast<const T*>(a.v);
  T* yo = static_cast<T*>(y);
  T* ld = static_cast<T*>(logdet);
  const A c = A(a.c);
  if (a.D == 1) {
    parallel_for(a.n, 16384, threads, [&](int64_t b, int64_t e) {
      forward_flat1<T, C, Inv>(x, a.sx, t, a.st, v, a.sv, yo, ld, b, e, c);
    });
    return;
  }
  parallel_for(a.n, grain_for(a.D), threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const A s = forward_row<T, C, Inv>(x + i * a.sx, t + i * a.st, v + i * a.sv, yo + i * a.D, a.D, c);
      store(ld, i, s);
    }
  });
}

template <typename T, int C, bool Inv>
void backward_impl(const CouplingArgs& a, const void* gy, int64_t sgy, const void* gl, void* gx, void* gv,
                   int threads) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(a.x);
  const T* t = static_cast<const T*>(a.t);
  const T* v = static_cast<const T*>(a.v);
  const T* g = static_cast<const T*>(gy);
  const T* gls = static_cast<const T*>(gl);
  T* ox = static_cast<T*>(gx);
  T* ov = static_cast<T*>(gv);
  const A c = A(a.c);
  if (a.D == 1) {
    parallel_for(a.n, 16384, threads, [&](int64_t b, int64_t e) {
      backward_flat1<T, C, Inv>(g, sgy, gls, x, a.sx, t, a.st, v, a.sv, ox, ov, b, e, c);
    });
    return;
  }
  parallel_for(a.n, grain_for(a.D), threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      backward_row<T, C, Inv>(g + i * sgy, load(gls, i), x + i * a.sx, t + i * a.st, v + i * a.sv,
                              ox + i * a.D, ov + i * a.D, a.D, c);
    }
  });
}

// Compile-time dispatch on (dtype, clamp, direction).
template <template <typename, int, bool> class K, typename... Args>
void dispatch(int dtype, int clamp, bool inv, Args&&... args) {
  auto by_clamp = [&](auto tag) {
    using T = decltype(tag);
    auto by_dir = [&](auto ctag) {
      constexpr int C = decltype(ctag)::value;
      if (inv) K<T, C, true>::run(args...);
      else K<T, C, false>::run(args...);
    };
    switch (clamp) {
      case kNone: return by_dir(std::integral_constant<int, kNone>{});
      case kAtan: return by_dir(std::integral_constant<int, kAtan>{});
      case kTanh: return by_dir(std::integral_constant<int, kTanh>{});
      case kSigmoid: return by_dir(std::integral_constant<int, kSigmoid>{});
      default: throw std::invalid_argument("unknown clamp code");
    }
  };
  dispatch_dtype(dtype, by_clamp);
}

template <typename T, int C, bool Inv>
struct ForwardK {
  static void run(const CouplingArgs& a, void* y, void* ld, int threads) { forward_impl<T, C, Inv>(a, y, ld, threads); }
};
template <typename T, int C, bool Inv>
struct BackwardK {
  static void run(const CouplingArgs& a, const void* gy, int64_t sgy, const void* gl, void* gx, void* gv,
                  int threads) {
    backward_impl<T, C, Inv>(a, gy, sgy, gl, gx, gv, threads);
  }
};

}  // namespace

void run_cpu(const CouplingForward& a, const Launch& at) {
  dispatch<ForwardK>(at.dtype, a.clamp, a.inverse, a, a.y, a.logdet, at.threads);
}

void run_cpu(const CouplingBackward& a, const Launch& at) {
  dispatch<BackwardK>(at.dtype, a.clamp, a.inverse, a, a.gy, a.sgy, a.gl, a.gx, a.gv, at.threads);
}

}  // namespace flows
}  // namespace gencore
