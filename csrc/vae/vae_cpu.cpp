// Reparameterized sampling and per-sample Gaussian KL on the CPU: one pass over (n, D) tiles;
// eps is drawn in the tile (noise contract) or read from a given noise array; the backward
// recomputes eps from the counter instead of storing it.
//
// Tiles are aligned to global multiples of noise::kTileElems elements. Each per-sample KL is
// summed in blocks of kBlock consecutive elements of the sample: 16 lanes indexed by (element
// index within the sample) % 16, combined in a fixed order, give a block's sum, and the block
// sums are added pairwise in a tree fixed by the block index (Cascade). The result does not
// depend on the thread count, the ISA clone, or where the sample sits in the batch, and its
// error grows like log(D) rather than D.

#include <algorithm>
#include <cstdint>

#include "common/cascade.h"
#include "common/gencore.h"
#include "common/parallel.h"
#include "rng/noise_cpu.h"
#include "vae/vae.h"
#include "vae/vae_math.h"

namespace gencore {
namespace {

constexpr int kL = noise::kTileElems;
constexpr int kLanes = 16;
constexpr int64_t kBlock = 256;  // elements per block of a sample's sum: 16 per lane

// acc[(j0 + k) % 16] += t[k] for k < count, lane order independent of how a row is split.
template <typename A>
GENCORE_HD void accumulate(A* acc, const A* t, int64_t count, int64_t j0) {
  int64_t k = 0;
  for (; k < count && ((j0 + k) & (kLanes - 1)) != 0; ++k) acc[(j0 + k) & (kLanes - 1)] += t[k];
  for (; k + kLanes <= count; k += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) acc[l] += t[k + l];
  }
  for (; k < count; ++k) acc[(j0 + k) & (kLanes - 1)] += t[k];
}

template <typename A>
GENCORE_HD A lane_sum(A* acc) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  const A s = acc[0];
  for (int l = 0; l < kLanes; ++l) acc[l] = A(0);
  return s;
}

// Rows [r0, r1): z (if Z) and kl (if KL); eps from `noise` when HasNoise, else drawn.
template <typename T, bool Z, bool KL, bool HasNoise>
GENCORE_SIMD_CLONES void forward_rows(const T* mu, const T* lv, const T* nz, T* z, T* kl, noise::Source src,
                                      int64_t r0, int64_t r1) {
  using A = acc_t<T>;
  constexpr bool kDraw = Z && !HasNoise;
  const int64_t D = src.D;
  alignas(64) A eps[kL];
  alignas(64) A term[kL];
  alignas(64) A acc[kLanes] = {};
  Cascade<A> blocks;
  int64_t e = r0 * D;
  const int64_t end = r1 * D;
  int64_t row = r0, j = 0;
  while (e < end) {
    const int64_t e2 = std::min(end, (e / kL + 1) * kL);
    const int64_t len = e2 - e;
    if (kDraw) noise::draw(src, e, len, eps, false);
#pragma omp simd
    for (int64_t q = 0; q < len; ++q) {
      const A m = load(mu, e + q);
      const A l = load(lv, e + q);
      const A sd = vae::stddev(l);
      if (Z) {
        const A ep = HasNoise ? load(nz, e + q) : eps[q];
        store(z, e + q, vae::sample(m, sd, ep));
      }
      if (KL) term[q] = vae::kl2_term(m, l, sd);
    }
    if (KL) {
      for (int64_t q = 0; q < len;) {
        const int64_t take = std::min(std::min(len - q, D - j), kBlock - j % kBlock);
        accumulate(acc, term + q, take, j);
        q += take;
        j += take;
        if (j % kBlock == 0 || j == D) blocks.push(lane_sum(acc));
        if (j == D) {
          store(kl, row, A(0.5) * blocks.total());
          j = 0;
          ++row;
        }
      }
    }
    e = e2;
  }
}

// Flat elements [e0, e1): dmu, dlogvar from gz (if GZ) and the per-sample gk (if GK).
template <typename T, bool GZ, bool GK, bool HasNoise>
GENCORE_SIMD_CLONES void backward_range(const T* mu, const T* lv, const T* nz, const T* gz, const T* gk, T* dmu,
                                        T* dlv, noise::Source src, int64_t e0, int64_t e1) {
  using A = acc_t<T>;
  constexpr bool kDraw = GZ && !HasNoise;
  const int64_t D = src.D;
  alignas(64) A eps[kL];
  alignas(64) A gkb[kL];
  for (int64_t e = e0; e < e1;) {
    const int64_t e2 = std::min(e1, (e / kL + 1) * kL);
    const int64_t len = e2 - e;
    if (kDraw) noise::draw(src, e, len, eps, false);
    if (GK) {  // the per-sample KL gradient, broadcast over the tile
      int64_t row = e / D, q = 0;
      while (q < len) {
        const int64_t take = std::min(len - q, (row + 1) * D - (e + q));
        const A g = load(gk, row);
        for (int64_t k = 0; k < take; ++k) gkb[q + k] = g;
        q += take;
        ++row;
      }
    }
#pragma omp simd
    for (int64_t q = 0; q < len; ++q) {
      const A m = load(mu, e + q);
      const A l = load(lv, e + q);
      const A sd = vae::stddev(l);
      const A g = GZ ? A(load(gz, e + q)) : A(0);
      const A k = GK ? gkb[q] : A(0);
      const A ep = GZ ? (HasNoise ? A(load(nz, e + q)) : eps[q]) : A(0);
      store(dmu, e + q, vae::grad_mu(m, g, k));
      store(dlv, e + q, vae::grad_logvar(sd, ep, g, k));
    }
    e = e2;
  }
}

template <typename T>
void forward_cpu(const vae::ForwardArgs& a, int threads) {
  const T* m = static_cast<const T*>(a.mu);
  const T* l = static_cast<const T*>(a.logvar);
  const T* e = static_cast<const T*>(a.noise);
  T* zo = static_cast<T*>(a.z);
  T* ko = static_cast<T*>(a.kl);
  const noise::Source src{a.seed, a.stream, a.sample0, a.D};
  const int64_t grain = std::max<int64_t>(1, 16384 / a.D);
  parallel_for(a.n, grain, threads, [&](int64_t r0, int64_t r1) {
    if (zo && ko) {
      if (e) forward_rows<T, true, true, true>(m, l, e, zo, ko, src, r0, r1);
      else forward_rows<T, true, true, false>(m, l, e, zo, ko, src, r0, r1);
    } else if (zo) {
      if (e) forward_rows<T, true, false, true>(m, l, e, zo, ko, src, r0, r1);
      else forward_rows<T, true, false, false>(m, l, e, zo, ko, src, r0, r1);
    } else {
      forward_rows<T, false, true, false>(m, l, e, zo, ko, src, r0, r1);
    }
  });
}

template <typename T, bool GZ, bool GK>
void backward_dispatch(const T* m, const T* l, const T* e, const T* gz, const T* gk, T* dm, T* dl,
                       const noise::Source& src, int64_t b, int64_t en) {
  if (e) backward_range<T, GZ, GK, true>(m, l, e, gz, gk, dm, dl, src, b, en);
  else backward_range<T, GZ, GK, false>(m, l, e, gz, gk, dm, dl, src, b, en);
}

template <typename T>
void backward_cpu(const vae::BackwardArgs& a, int threads) {
  const T* m = static_cast<const T*>(a.mu);
  const T* l = static_cast<const T*>(a.logvar);
  const T* e = static_cast<const T*>(a.noise);
  const T* g = static_cast<const T*>(a.grad_z);
  const T* k = static_cast<const T*>(a.grad_kl);
  T* dm = static_cast<T*>(a.grad_mu);
  T* dl = static_cast<T*>(a.grad_logvar);
  const noise::Source src{a.seed, a.stream, a.sample0, a.D};
  const int64_t total = a.n * a.D;
  const int64_t tiles = (total + kL - 1) / kL;
  parallel_for(tiles, 16, threads, [&](int64_t tb, int64_t te) {
    const int64_t b = tb * kL, en = std::min(total, te * kL);
    if (g && k) backward_dispatch<T, true, true>(m, l, e, g, k, dm, dl, src, b, en);
    else if (g) backward_dispatch<T, true, false>(m, l, e, g, k, dm, dl, src, b, en);
    else if (k) backward_dispatch<T, false, true>(m, l, e, g, k, dm, dl, src, b, en);
    else backward_dispatch<T, false, false>(m, l, e, g, k, dm, dl, src, b, en);
  });
}

}  // namespace

namespace vae {

void run_cpu(const ForwardArgs& a, const Launch& at) {
  dispatch_dtype(at.dtype, [&](auto tag) { forward_cpu<decltype(tag)>(a, at.threads); });
}

void run_cpu(const BackwardArgs& a, const Launch& at) {
  dispatch_dtype(at.dtype, [&](auto tag) { backward_cpu<decltype(tag)>(a, at.threads); });
}

}  // namespace vae
}  // namespace gencore
