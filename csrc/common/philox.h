// Counter-based noise: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC 2011) with Random123's constants, and the gencore noise contract on top of it.
//
// Noise contract: the value of element j of sample i is a pure function of
// (seed, stream, sample index i, element index j):
//   counter = (j / 4, lo32(i), hi32(i), stream), key = (lo32(seed), hi32(seed))
//   word    = philox4x32_10(counter, key)[j % 4]
// Uniforms come from one word each; standard normals from Box-Muller on the word pairs
// (0, 1) and (2, 3) of the same block. The math below is plain arithmetic and selects, so the
// same code runs in CPU SIMD loops and CUDA kernels.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/gencore.h"

namespace gencore {

struct u32x4 {
  uint32_t v[4];
};

GENCORE_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

GENCORE_HD u32x4 philox4x32_10(u32x4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(M0, c.v[0], hi0, lo0);
    mulhilo32(M1, c.v[2], hi1, lo1);
    u32x4 n;
    n.v[0] = hi1 ^ c.v[1] ^ k0;
    n.v[1] = lo1;
    n.v[2] = hi0 ^ c.v[3] ^ k1;
    n.v[3] = lo0;
    c = n;
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// The block of four words holding elements 4*block .. 4*block+3 of `sample`.
GENCORE_HD u32x4 noise_block(uint64_t seed, uint32_t stream, uint64_t sample, uint32_t block) {
  u32x4 c;
  c.v[0] = block;
  c.v[1] = uint32_t(sample);
  c.v[2] = uint32_t(sample >> 32);
  c.v[3] = stream;
  return philox4x32_10(c, uint32_t(seed), uint32_t(seed >> 32));
}

// Uniforms strictly inside (0, 1); both are exact (no rounding).
GENCORE_HD float uniform_f32(uint32_t w) { return float(w >> 8) * 5.9604644775390625e-08f + 2.98023223876953125e-08f; }
GENCORE_HD double uniform_f64(uint32_t w) { return double(w) * 2.3283064365386963e-10 + 1.1641532182693481e-10; }

// log(x) for x in (0, 1] (normal floats): Cephes logf, branch free.
GENCORE_HD float log_unit_f32(float x) {
  const uint32_t u = float_to_bits(x);
  float e = float(int32_t(u >> 23) - 127);
  float m = bits_to_float((u & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  const bool big = m > 1.41421356237f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  const float f = m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y = y + -2.12194440e-4f * e;
  y = y + -0.5f * z;
  float r = f + y;
  r = r + 0.693359375f * e;
  return r;
}

// sin(2 pi u) and cos(2 pi u) for u in (0, 1): exact reduction to [-pi/4, pi/4], Cephes
// minimax polynomials, branch-free quadrant rotation.
GENCORE_HD void sincos_2pi_f32(float u, float& s, float& c) {
  const float q = std::floor(u * 4.0f + 0.5f);  // nearest quarter turn, 0..4
  const float t = u - q * 0.25f;                // exact, in [-1/8, 1/8]
  const float a = t * 6.28318530717958647692f;
  const float a2 = a * a;
  float ps = -1.9515295891e-4f;
  ps = ps * a2 + 8.3321608736e-3f;
  ps = ps * a2 - 1.6666654611e-1f;
  const float sa = a + a * a2 * ps;
  float pc = 2.443315711809948e-5f;
  pc = pc * a2 - 1.388731625493765e-3f;
  pc = pc * a2 + 4.166664568298827e-2f;
  const float ca = 1.0f - 0.5f * a2 + a2 * a2 * pc;
  const int qi = int(q) & 3;
  const float s1 = (qi & 1) ? ca : sa;
  const float c1 = (qi & 1) ? sa : ca;
  s = (qi & 2) ? -s1 : s1;
  c = ((qi + 1) & 2) ? -c1 : c1;
}

// Four standard normals from one block: Box-Muller on (w0, w1) and (w2, w3).
GENCORE_HD void normal4_f32(const u32x4& w, float out[4]) {
  const float r0 = std::sqrt(-2.0f * log_unit_f32(uniform_f32(w.v[0])));
  const float r1 = std::sqrt(-2.0f * log_unit_f32(uniform_f32(w.v[2])));
  float s0, c0, s1, c1;
  sincos_2pi_f32(uniform_f32(w.v[1]), s0, c0);
  sincos_2pi_f32(uniform_f32(w.v[3]), s1, c1);
  out[0] = r0 * c0;
  out[1] = r0 * s0;
  out[2] = r1 * c1;
  out[3] = r1 * s1;
}

GENCORE_HD void normal4_f64(const u32x4& w, double out[4]) {
  const double r0 = std::sqrt(-2.0 * std::log(uniform_f64(w.v[0])));
  const double r1 = std::sqrt(-2.0 * std::log(uniform_f64(w.v[2])));
  const double a0 = 6.283185307179586476925 * uniform_f64(w.v[1]);
  const double a1 = 6.283185307179586476925 * uniform_f64(w.v[3]);
  out[0] = r0 * std::cos(a0);
  out[1] = r0 * std::sin(a0);
  out[2] = r1 * std::cos(a1);
  out[3] = r1 * std::sin(a1);
}

// Normals in the accumulation type of T: float for 16-bit and float32, double for float64.
GENCORE_HD void normal4(const u32x4& w, float out[4]) { normal4_f32(w, out); }
GENCORE_HD void normal4(const u32x4& w, double out[4]) { normal4_f64(w, out); }

// One standard normal: element j of sample `sample` (the scalar form, for kernels that need a
// single element; vector loops use noise_block + normal4 per block of four).
template <typename A>
GENCORE_HD A normal_at(uint64_t seed, uint32_t stream, uint64_t sample, int64_t j) {
  const u32x4 w = noise_block(seed, stream, sample, uint32_t(j >> 2));
  A out[4];
  normal4(w, out);
  return out[j & 3];
}

}  // namespace gencore
