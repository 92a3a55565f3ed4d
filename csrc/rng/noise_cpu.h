// Noise-contract draws on the CPU, vectorised: Philox over a tile of counters held in small
// arrays (structure of arrays), then Box-Muller over the arrays. Every loop is a plain
// `#pragma omp simd` loop over the tile, so the SIMD clones of the calling kernel (see
// GENCORE_SIMD_CLONES) vectorise them; values are those of noise_block + normal4 exactly.
//
// Kernels that need noise for a flat range of elements of an (n, D) array call
// noise::draw<Uniform>(source, first_element, count, dst): for example the rng fill and the
// VAE reparameterization kernels, which draw a tile into a stack buffer and then use it.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/gencore.h"
#include "common/philox.h"

namespace gencore {
namespace noise {

// Blocks of four words per tile; 4 * kTile values per tile (2 KiB of float32).
constexpr int kTile = 128;
constexpr int kTileElems = 4 * kTile;
// Samples of at least this many blocks get their counters made in registers (philox_run).
constexpr int64_t kMinRun = 16;

// Where the noise of an (n, D) array comes from: row i is sample `sample0 + i`.
struct Source {
  uint64_t seed;
  uint32_t stream;
  uint64_t sample0;
  int64_t D;
};

// Words of m <= kTile blocks with counters (blk[t], lo[t], hi[t], stream), by word position.
struct Words {
  alignas(64) uint32_t w[4][kTile];
};

GENCORE_HD void philox_tile(int m, const uint32_t* blk, const uint32_t* lo, const uint32_t* hi, uint32_t stream,
                            uint64_t seed, Words& W) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
#pragma omp simd
  for (int t = 0; t < m; ++t) {
    uint64_t x0 = blk[t], x1 = lo[t], x2 = hi[t], x3 = stream;
    philox_rounds_u64(x0, x1, x2, x3, k0, k1);
    W.w[0][t] = uint32_t(x0);
    W.w[1][t] = uint32_t(x1);
    W.w[2][t] = uint32_t(x2);
    W.w[3][t] = uint32_t(x3);
  }
}

// Blocks b0, b0 + 1, ..., b0 + m - 1 of one sample, into word slots t0 .. t0 + m - 1 of W: the
// counters are made in registers, so long rows need no per-block bookkeeping.
GENCORE_HD void philox_run(int m, uint32_t b0, uint64_t sample, uint32_t stream, uint64_t seed, Words& W, int t0) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const uint64_t lo = sample & 0xffffffffu, hi = sample >> 32;
  uint32_t* w0 = W.w[0] + t0;
  uint32_t* w1 = W.w[1] + t0;
  uint32_t* w2 = W.w[2] + t0;
  uint32_t* w3 = W.w[3] + t0;
#pragma omp simd
  for (int t = 0; t < m; ++t) {
    uint64_t x0 = uint32_t(b0 + uint32_t(t)), x1 = lo, x2 = hi, x3 = stream;
    philox_rounds_u64(x0, x1, x2, x3, k0, k1);
    w0[t] = uint32_t(x0);
    w1[t] = uint32_t(x1);
    w2[t] = uint32_t(x2);
    w3[t] = uint32_t(x3);
  }
}

// Block 0 of samples s0, s0 + 1, ..., s0 + m - 1 (samples of at most four values).
GENCORE_HD void philox_samples(int m, uint64_t s0, uint32_t stream, uint64_t seed, Words& W) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
#pragma omp simd
  for (int t = 0; t < m; ++t) {
    const uint64_t s = s0 + uint64_t(t);
    uint64_t x0 = 0, x1 = s & 0xffffffffu, x2 = s >> 32, x3 = stream;
    philox_rounds_u64(x0, x1, x2, x3, k0, k1);
    W.w[0][t] = uint32_t(x0);
    W.w[1][t] = uint32_t(x1);
    W.w[2][t] = uint32_t(x2);
    W.w[3][t] = uint32_t(x3);
  }
}

// out[D t + q] = value q (< D) of block t, for samples of D <= 4 float values; only the
// Box-Muller pairs that reach the output are computed.
template <int D>
GENCORE_HD void transform_small(int m, const Words& W, float* out, bool uniform) {
  if (uniform) {
#pragma omp simd
    for (int t = 0; t < m; ++t) {
      for (int q = 0; q < D; ++q) out[D * t + q] = uniform_f32(W.w[q][t]);
    }
    return;
  }
#pragma omp simd
  for (int t = 0; t < m; ++t) {
    const float r0 = std::sqrt(-2.0f * log_unit_f32(uniform_f32(W.w[0][t])));
    float s0, c0;
    sincos_2pi_f32(uniform_f32(W.w[1][t]), s0, c0);
    out[D * t + 0] = r0 * c0;
    if (D > 1) out[D * t + 1] = r0 * s0;
    if (D > 2) {
      const float r1 = std::sqrt(-2.0f * log_unit_f32(uniform_f32(W.w[2][t])));
      float s1, c1;
      sincos_2pi_f32(uniform_f32(W.w[3][t]), s1, c1);
      out[D * t + 2] = r1 * c1;
      if (D > 3) out[D * t + 3] = r1 * s1;
    }
  }
}

template <int D>
GENCORE_HD void draw_small(const Source& src, int64_t i0, int64_t i1, float* dst, bool uniform) {
  Words W;
  for (int64_t i = i0; i < i1; i += kTile) {
    const int m = int(i1 - i < kTile ? i1 - i : kTile);
    philox_samples(m, src.sample0 + uint64_t(i), src.stream, src.seed, W);
    transform_small<D>(m, W, dst + (i - i0) * D, uniform);
  }
}

// out[4t + q] = value q of block t (the layout of the (n, D) array within a sample).
GENCORE_HD void transform_tile(int m, const Words& W, float* out, bool uniform) {
  if (uniform) {
#pragma omp simd
    for (int t = 0; t < m; ++t) {
      out[4 * t + 0] = uniform_f32(W.w[0][t]);
      out[4 * t + 1] = uniform_f32(W.w[1][t]);
      out[4 * t + 2] = uniform_f32(W.w[2][t]);
      out[4 * t + 3] = uniform_f32(W.w[3][t]);
    }
    return;
  }
#pragma omp simd
  for (int t = 0; t < m; ++t) {
    const float r0 = std::sqrt(-2.0f * log_unit_f32(uniform_f32(W.w[0][t])));
    const float r1 = std::sqrt(-2.0f * log_unit_f32(uniform_f32(W.w[2][t])));
    float s0, c0, s1, c1;
    sincos_2pi_f32(uniform_f32(W.w[1][t]), s0, c0);
    sincos_2pi_f32(uniform_f32(W.w[3][t]), s1, c1);
    out[4 * t + 0] = r0 * c0;
    out[4 * t + 1] = r0 * s0;
    out[4 * t + 2] = r1 * c1;
    out[4 * t + 3] = r1 * s1;
  }
}

GENCORE_HD void transform_tile(int m, const Words& W, double* out, bool uniform) {
  for (int t = 0; t < m; ++t) {
    const u32x4 w{{W.w[0][t], W.w[1][t], W.w[2][t], W.w[3][t]}};
    if (uniform) {
      for (int q = 0; q < 4; ++q) out[4 * t + q] = uniform_f64(w.v[q]);
    } else {
      normal4_f64(w, out + 4 * t);
    }
  }
}

// dst[0 .. count) = values of the flat elements [e0, e0 + count) of the (n, D) array `src`
// describes (standard normals, or uniforms in (0, 1)); A is float or double.
template <typename A>
GENCORE_HD void draw_general(const Source& src, int64_t e0, int64_t count, A* dst, bool uniform);

template <typename A>
GENCORE_HD void draw(const Source& src, int64_t e0, int64_t count, A* dst, bool uniform) {
  if (count <= 0) return;
  const int64_t D = src.D;
  if constexpr (std::is_same<A, float>::value) {
    if (D <= 4) {  // small samples: vectorise across whole samples, partial ones at the ends
      const int64_t end = e0 + count;
      int64_t i0 = (e0 + D - 1) / D, i1 = end / D;
      if (i1 < i0) i1 = i0;
      const int64_t head_end = i0 * D < end ? i0 * D : end;
      draw_general(src, e0, head_end - e0, dst, uniform);
      if (i1 > i0) {
        float* body = dst + (i0 * D - e0);
        switch (D) {
          case 1: draw_small<1>(src, i0, i1, body, uniform); break;
          case 2: draw_small<2>(src, i0, i1, body, uniform); break;
          case 3: draw_small<3>(src, i0, i1, body, uniform); break;
          default: draw_small<4>(src, i0, i1, body, uniform); break;
        }
      }
      const int64_t tail = i1 * D > head_end ? i1 * D : head_end;
      draw_general(src, tail, end - tail, dst + (tail - e0), uniform);
      return;
    }
  }
  draw_general(src, e0, count, dst, uniform);
}

template <typename A>
GENCORE_HD void draw_general(const Source& src, int64_t e0, int64_t count, A* dst, bool uniform) {
  if (count <= 0) return;
  const int64_t D = src.D;
  const int64_t nb = (D + 3) >> 2;
  alignas(64) uint32_t blk[kTile], lo[kTile], hi[kTile];
  Words W;
  alignas(64) A tmp[kTileElems];
  int64_t i = e0 / D;
  int64_t b = (e0 - i * D) >> 2;
  if ((D & 3) == 0) {
    // Dense: flat element e lives in flat block e / 4, so a tile of blocks covers a contiguous
    // range of elements; aligned full tiles are written straight into dst.
    const int64_t kfirst = e0 >> 2, kend = (e0 + count + 3) >> 2;
    for (int64_t k = kfirst; k < kend; k += kTile) {
      const int m = int(kend - k < kTile ? kend - k : kTile);
      uint64_t s = src.sample0 + uint64_t(i);
      if (nb >= kMinRun) {  // runs of consecutive blocks within a sample
        for (int t = 0; t < m;) {
          const int run = int(nb - b < m - t ? nb - b : m - t);
          philox_run(run, uint32_t(b), s, src.stream, src.seed, W, t);
          t += run;
          b += run;
          if (b == nb) {
            b = 0;
            ++i;
            ++s;
          }
        }
      } else {
        for (int t = 0; t < m; ++t) {
          blk[t] = uint32_t(b);
          lo[t] = uint32_t(s);
          hi[t] = uint32_t(s >> 32);
          if (++b == nb) {
            b = 0;
            ++i;
            ++s;
          }
        }
        philox_tile(m, blk, lo, hi, src.stream, src.seed, W);
      }
      const int64_t t0 = 4 * k;  // first element of the tile
      const int64_t lo_e = t0 > e0 ? t0 : e0;
      const int64_t hi_e = (t0 + 4 * m) < (e0 + count) ? (t0 + 4 * m) : (e0 + count);
      if (lo_e == t0 && hi_e == t0 + 4 * m) {
        transform_tile(m, W, dst + (t0 - e0), uniform);
      } else {
        transform_tile(m, W, tmp, uniform);
        for (int64_t e = lo_e; e < hi_e; ++e) dst[e - e0] = tmp[e - t0];
      }
    }
    return;
  }
  // Ragged rows (D % 4 != 0): the last block of each sample is partial; copy per block.
  int64_t j = e0 - i * D;  // next element (within sample i) still to produce
  int64_t pos = 0;
  int16_t first[kTile], cnt[kTile];
  while (pos < count) {
    int m = 0;
    int64_t need = count - pos;
    uint64_t s = src.sample0 + uint64_t(i);
    while (m < kTile && need > 0) {
      const int64_t bb = j >> 2;
      const int64_t q0 = j & 3;
      int64_t c = (D - 4 * bb < 4 ? D - 4 * bb : 4) - q0;
      if (c > need) c = need;
      blk[m] = uint32_t(bb);
      lo[m] = uint32_t(s);
      hi[m] = uint32_t(s >> 32);
      first[m] = int16_t(q0);
      cnt[m] = int16_t(c);
      ++m;
      need -= c;
      j += c;
      if (j == D) {
        j = 0;
        ++i;
        ++s;
      }
    }
    philox_tile(m, blk, lo, hi, src.stream, src.seed, W);
    transform_tile(m, W, tmp, uniform);
    for (int t = 0; t < m; ++t) {
      const A* from = tmp + 4 * t + first[t];
      for (int q = 0; q < cnt[t]; ++q) dst[pos + q] = from[q];
      pos += cnt[t];
    }
  }
}

}  // namespace noise
}  // namespace gencore
