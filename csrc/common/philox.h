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

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

#if !defined(__CUDA_ARCH__)
// Ten rounds on words held in the low halves of 64-bit lanes (the upper halves are don't-care
// bits that never reach a result: multiplications read the low half only, outputs are
// truncated). This form lets the CPU vectoriser use one widening multiply per product and
// is what the SIMD loops call; it gives the same words as the textbook form.
GENCORE_HD void philox_rounds_u64(uint64_t& x0, uint64_t& x1, uint64_t& x2, uint64_t& x3, uint32_t k0,
                                  uint32_t k1) {
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC unroll 10
#endif
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t(kPhiloxM0) * (x0 & 0xffffffffu);
    const uint64_t p1 = uint64_t(kPhiloxM1) * (x2 & 0xffffffffu);
    const uint64_t y0 = (p1 >> 32) ^ x1 ^ k0;
    const uint64_t y2 = (p0 >> 32) ^ x3 ^ k1;
    x1 = p1;
    x3 = p0;
    x0 = y0;
    x2 = y2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}
#endif

GENCORE_HD u32x4 philox4x32_10(u32x4 c, uint32_t k0, uint32_t k1) {
#if defined(__CUDA_ARCH__)
  uint32_t x0 = c.v[0], x1 = c.v[1], x2 = c.v[2], x3 = c.v[3];
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = __umulhi(kPhiloxM0, x0), lo0 = kPhiloxM0 * x0;
    const uint32_t hi1 = __umulhi(kPhiloxM1, x2), lo1 = kPhiloxM1 * x2;
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return u32x4{{x0, x1, x2, x3}};
#else
  uint64_t x0 = c.v[0], x1 = c.v[1], x2 = c.v[2], x3 = c.v[3];
  philox_rounds_u64(x0, x1, x2, x3, k0, k1);
  return u32x4{{uint32_t(x0), uint32_t(x1), uint32_t(x2), uint32_t(x3)}};
#endif
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
GENCORE_HD float uniform_f32(uint32_t w) {
  return float(int32_t(w >> 8)) * 5.9604644775390625e-08f + 2.98023223876953125e-08f;
}
GENCORE_HD double uniform_f64(uint32_t w) { return double(w) * 2.3283064365386963e-10 + 1.1641532182693481e-10; }

// Float32 uniforms about to be rounded to a 16-bit type, clamped so that they stay strictly
// inside (0, 1) after rounding: float16 would round values from 1 - 2**-12 up to 1 and 2**-25
// down to 0; bfloat16 rounds values from 1 - 2**-9 up to 1.
GENCORE_HD float uniform_clamp16(float v, bool bf16) {
  const float hi = bf16 ? 0.99609375f : 0.99951171875f;  // largest value below 1 in the type
  const float lo = bf16 ? 0.0f : 5.9604644775390625e-08f;  // float16's smallest subnormal
  v = v > hi ? hi : v;
  return v < lo ? lo : v;
}

// log(x) for x in (0, 1] (normal floats): Cephes logf. Branch free and select free on
// floats (integer bit operations only), so it vectorises without speculating float ops.
GENCORE_HD float log_unit_f32(float x) {
  const uint32_t u = float_to_bits(x);
  const uint32_t mb = (u & 0x007fffffu) | 0x3f800000u;  // the mantissa as a float in [1, 2)
  const uint32_t big = mb > 0x3fb504f3u ? 1u : 0u;     // m > 1.41421356237f (same order as floats)
  const float e = float(int32_t(u >> 23) - 127 + int32_t(big));
  const float m = bits_to_float(mb - (big << 23));      // m / 2 when big (exact)
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
  const int32_t qn = int32_t(u * 4.0f + 0.5f);  // nearest quarter turn, 0..4 (floor of a positive)
  const float q = float(qn);
  const float t = u - q * 0.25f;  // exact, in [-1/8, 1/8]
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
  // Quadrant rotation with integer masks: swap on odd quadrants, negate via the sign bit.
  const uint32_t odd = 0u - uint32_t(qn & 1);
  const uint32_t sab = float_to_bits(sa), cab = float_to_bits(ca);
  const uint32_t s1 = (cab & odd) | (sab & ~odd);
  const uint32_t c1 = (sab & odd) | (cab & ~odd);
  s = bits_to_float(s1 ^ (uint32_t(qn & 2) << 30));
  c = bits_to_float(c1 ^ (uint32_t((qn + 1) & 2) << 30));
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
