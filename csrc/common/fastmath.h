// Float32 elementary functions for the kernels' SIMD loops: branch free (integer bit
// operations and arithmetic only), so that `#pragma omp simd` loops vectorise without
// -ffast-math, and the same code runs in CUDA kernels.
#pragma once

#include <cstdint>

#include "common/gencore.h"

namespace gencore {

// exp(x) in float32: Cody-Waite reduction and Cephes' polynomial. At most 1 ulp from the
// correctly rounded value for every finite float32 whose exp is a normal float (checked
// exhaustively); overflows to inf, underflows to zero through subnormals, passes NaN through.
GENCORE_HD float exp_f32(float x) {
  // Clamp to [-104, 89] with integer selects (float selects against constants get if-converted
  // into masked copies of the whole function). NaN fails both tests and flows through the
  // arithmetic below.
  const uint32_t below = 0u - uint32_t(x < -104.0f);
  const uint32_t above = 0u - uint32_t(x > 89.0f);
  const float xc = bits_to_float((float_to_bits(x) & ~(below | above)) | (0xc2d00000u & below) |
                                 (0x42b20000u & above));
  // n = round(x / ln 2) (ties to even) by adding 1.5 * 2**23: its low mantissa bits are n.
  const float big = xc * 1.44269504088896341f + 12582912.0f;
  const float fn = big - 12582912.0f;
  const int32_t n = int32_t(float_to_bits(big) - 0x4b400000u);
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r;
  p = p + 1.0f;
  // 2^n in two factors so every exponent stays in the normal range (n in [-150, 128]).
  const int32_t n1 = n >> 1;
  const int32_t n2 = n - n1;
  const float s1 = bits_to_float(uint32_t(n1 + 127) << 23);
  const float s2 = bits_to_float(uint32_t(n2 + 127) << 23);
  return (p * s1) * s2;
}

}  // namespace gencore
