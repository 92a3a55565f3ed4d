// Fused diffusion steps and forward noising on the CPU: OpenMP over contiguous ranges of
// (sample, block-of-4) units, SIMD inside a sample's row. The math is diffusion_math.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "common/gencore.h"
#include "common/parallel.h"
#include "common/philox.h"
#include "rng/noise_cpu.h"
#include "diffusion/diffusion.h"

namespace gencore {
namespace diffusion {
namespace {

template <typename T>
struct Row {
  const T* x;
  const T* c;
  const T* u;
  const T* z;
  const T* h[kMaxHistory];
  T* prev;
  T* x0;
  T* aux;
};

template <typename T, bool Guided, int H, bool Aux>
__attribute__((always_inline)) inline void do_element(const Row<T>& p, const Coef<acc_t<T>>& k, acc_t<T> g,
                                                      acc_t<T> r, int64_t j, acc_t<T> z) {
  using A = acc_t<T>;
  const A c = load(p.c, j);
  const A m = Guided ? guide(c, A(load(p.u, j)), g) : c;
  A h[kMaxHistory > H ? kMaxHistory : H];
  for (int q = 0; q < H; ++q) h[q] = A(load(p.h[q], j));
  A prev, x0, aux;
  step_element<H>(k, r, A(load(p.x, j)), m, z, h, prev, x0, aux);
  store(p.prev, j, prev);
  store(p.x0, j, x0);
  if (Aux) store(p.aux, j, aux);
}

// Normals of blocks [b, b + count) (count <= kTile) of one sample, written to out[0, 4 count):
// the noise contract's values, from the shared CPU noise tiles (rng/noise_cpu.h).
constexpr int kTile = noise::kTile;

// Units (blocks of 4 elements) per parallel chunk: 32768 elements, torch's own grain size, so
// tensors below that run on the calling thread.
constexpr int64_t kGrainUnits = 8192;

template <typename A>
__attribute__((always_inline)) inline void normals_tile(uint64_t seed, uint32_t stream, uint64_t sample, int64_t b,
                                                        int count, A* out) {
  noise::Words W;
  noise::philox_run(count, uint32_t(b), sample, stream, seed, W, 0);
  noise::transform_tile(count, W, out, false);
}

// Units [k0, k1) of the flattened (sample i, block b) index; block b holds elements 4b..4b+3.
template <typename T, bool Guided, int Noise, int H, bool Aux>
GENCORE_SIMD_CLONES void step_units(const StepArgs& a, int64_t k0, int64_t k1) {
  using A = acc_t<T>;
  const int64_t D = a.D;
  const int64_t nb = (D + 3) / 4;
  const A g = A(a.guidance);
  const A r = a.clip > 0 ? A(a.clip) : std::numeric_limits<A>::infinity();
  int64_t k = k0;
  while (k < k1) {
    const int64_t i = k / nb;
    const int64_t b0 = k - i * nb;
    const int64_t b1 = std::min(nb, b0 + (k1 - k));
    const Coef<A> kc = make_coef<A>(a.rows ? a.rows + i * kNumCoef : a.coef);
    const int64_t off = i * D;
    Row<T> p;
    p.x = static_cast<const T*>(a.x) + off;
    p.c = static_cast<const T*>(a.c) + off;
    p.u = Guided ? static_cast<const T*>(a.u) + off : nullptr;
    p.z = Noise == kExplicitNoise ? static_cast<const T*>(a.z) + off : nullptr;
    for (int q = 0; q < kMaxHistory; ++q) p.h[q] = q < H ? static_cast<const T*>(a.h[q]) + off : nullptr;
    p.prev = static_cast<T*>(a.prev) + off;
    p.x0 = static_cast<T*>(a.x0) + off;
    p.aux = Aux ? static_cast<T*>(a.aux) + off : nullptr;
    if constexpr (Noise == kPhiloxNoise) {
      const uint64_t sample = a.sample0 + uint64_t(i);
      alignas(64) A zbuf[4 * kTile];
      for (int64_t bt = b0; bt < b1; bt += kTile) {
        const int cnt = int(std::min<int64_t>(kTile, b1 - bt));
        normals_tile<A>(a.seed, a.stream, sample, bt, cnt, zbuf);
        const int64_t j0 = 4 * bt;
        const int64_t m = std::min<int64_t>(4 * int64_t(cnt), D - j0);
#pragma omp simd
        for (int64_t q = 0; q < m; ++q) do_element<T, Guided, H, Aux>(p, kc, g, r, j0 + q, zbuf[q]);
      }
    } else {
      const int64_t j0 = 4 * b0;
      const int64_t j1 = std::min(D, 4 * b1);
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const A z = Noise == kExplicitNoise ? A(load(p.z, j)) : A(0);
        do_element<T, Guided, H, Aux>(p, kc, g, r, j, z);
      }
    }
    k += b1 - b0;
  }
}

template <typename T, bool Guided, int Noise, int H, bool Aux>
void run(const StepArgs& a, int threads) {
  const int64_t units = a.n * ((a.D + 3) / 4);
  parallel_for(units, kGrainUnits, threads,
               [&](int64_t b, int64_t e) { step_units<T, Guided, Noise, H, Aux>(a, b, e); });
}

// Compile-time kernel variant for the runtime shape of a step: guidance, noise source, number
// of history inputs and whether the aux output is wanted.
template <typename T, bool Guided, int Noise, int H>
void with_aux(const StepArgs& a, int threads) {
  if (a.aux) run<T, Guided, Noise, H, true>(a, threads);
  else run<T, Guided, Noise, H, false>(a, threads);
}

template <typename T, bool Guided, int Noise>
void with_history(const StepArgs& a, int threads) {
  switch (a.n_history) {
    case 0: return with_aux<T, Guided, Noise, 0>(a, threads);
    case 1: return with_aux<T, Guided, Noise, 1>(a, threads);
    case 2: return with_aux<T, Guided, Noise, 2>(a, threads);
    case 3: return with_aux<T, Guided, Noise, 3>(a, threads);
    case 4: return with_aux<T, Guided, Noise, 4>(a, threads);
    default: throw std::invalid_argument("diffusion_step: at most 4 history inputs");
  }
}

template <typename T, bool Guided>
void with_noise(const StepArgs& a, int threads) {
  switch (a.noise_mode) {
    case kNoNoise: return with_history<T, Guided, kNoNoise>(a, threads);
    case kExplicitNoise: return with_history<T, Guided, kExplicitNoise>(a, threads);
    case kPhiloxNoise: return with_history<T, Guided, kPhiloxNoise>(a, threads);
    default: throw std::invalid_argument("diffusion_step: unknown noise mode");
  }
}

template <typename T>
void step_cpu(const StepArgs& a, int threads) {
  if (a.u) with_noise<T, true>(a, threads);
  else with_noise<T, false>(a, threads);
}

template <typename T, bool Philox>
GENCORE_SIMD_CLONES void q_units(const QSampleArgs& a, int64_t k0, int64_t k1) {
  using A = acc_t<T>;
  const int64_t D = a.D;
  const int64_t nb = (D + 3) / 4;
  int64_t k = k0;
  while (k < k1) {
    const int64_t i = k / nb;
    const int64_t b0 = k - i * nb;
    const int64_t b1 = std::min(nb, b0 + (k1 - k));
    const A ca = A(a.ab[2 * i]);
    const A cb = A(a.ab[2 * i + 1]);
    const T* x = static_cast<const T*>(a.x0) + i * D;
    T* out = static_cast<T*>(a.out) + i * D;
    if constexpr (Philox) {
      T* zo = static_cast<T*>(a.z_out) + i * D;
      const uint64_t sample = a.sample0 + uint64_t(i);
      alignas(64) A zbuf[4 * kTile];
      for (int64_t bt = b0; bt < b1; bt += kTile) {
        const int cnt = int(std::min<int64_t>(kTile, b1 - bt));
        normals_tile<A>(a.seed, a.stream, sample, bt, cnt, zbuf);
        const int64_t j0 = 4 * bt;
        const int64_t m = std::min<int64_t>(4 * int64_t(cnt), D - j0);
#pragma omp simd
        for (int64_t q = 0; q < m; ++q) {
          store(out, j0 + q, q_sample_element(ca, cb, A(load(x, j0 + q)), zbuf[q]));
          store(zo, j0 + q, zbuf[q]);
        }
      }
    } else {
      const T* z = static_cast<const T*>(a.z) + i * D;
      const int64_t j0 = 4 * b0;
      const int64_t j1 = std::min(D, 4 * b1);
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) store(out, j, q_sample_element(ca, cb, A(load(x, j)), A(load(z, j))));
    }
    k += b1 - b0;
  }
}

template <typename T>
void q_sample_cpu(const QSampleArgs& a, int threads) {
  const int64_t units = a.n * ((a.D + 3) / 4);
  parallel_for(units, kGrainUnits, threads, [&](int64_t b, int64_t e) {
    if (a.z) q_units<T, false>(a, b, e);
    else q_units<T, true>(a, b, e);
  });
}

}  // namespace

void run_cpu(const StepArgs& a, const Launch& at) {
  dispatch_dtype(at.dtype, [&](auto tag) { step_cpu<decltype(tag)>(a, at.threads); });
}

void run_cpu(const QSampleArgs& a, const Launch& at) {
  dispatch_dtype(at.dtype, [&](auto tag) { q_sample_cpu<decltype(tag)>(a, at.threads); });
}

}  // namespace diffusion
}  // namespace gencore
