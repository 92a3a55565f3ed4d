// Reparameterized Gaussian sampling and its KL divergence to N(0, I), per element; shared by
// the CPU (vae_cpu.cpp) and CUDA (vae_cuda.cu) kernels.
//
//   std = exp(logvar / 2),  z = mu + std * eps
//   KL(N(mu, std^2) || N(0, 1)) = 0.5 * (mu^2 + std^2 - 1 - logvar)     (summed per sample)
//   dz/dmu = 1,  dz/dlogvar = 0.5 * std * eps,  dKL/dmu = mu,  dKL/dlogvar = 0.5 * (std^2 - 1)
#pragma once

#include <cmath>
#include <cstdint>

#include "common/gencore.h"

namespace gencore {
namespace vae {

// exp(x) in float32: Cody-Waite reduction and Cephes' polynomial, branch free (selects of
// computed values and integer bit operations only) so that CPU loops vectorise; within two ulp
// of the correctly rounded value over the normal range, overflows to inf, underflows to zero
// (through subnormals), passes NaN through.
GENCORE_HD float exp_f32(float x) {
  // Clamp to [-104, 89] (and NaN to -104; restored at the end) with integer selects: float
  // selects against constants get jump-threaded into branches that block vectorisation.
  const uint32_t below = 0u - uint32_t(!(x >= -104.0f));
  const uint32_t above = 0u - uint32_t(x > 89.0f);
  const uint32_t xb = (float_to_bits(x) & ~(below | above)) | (0xc2d00000u & below) | (0x42b20000u & above);
  const float xc = bits_to_float(xb);
  const float t = xc * 1.44269504088896341f;
  const float half = bits_to_float(0x3f000000u | (float_to_bits(t) & 0x80000000u));  // copysign(0.5, t)
  const int32_t n = int32_t(t + half);  // round to nearest, ties away
  const float fn = float(n);
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
  const float y = (p * s1) * s2;
  const uint32_t nan = 0u - uint32_t(x != x);
  return bits_to_float((float_to_bits(x) & nan) | (float_to_bits(y) & ~nan));
}

GENCORE_HD float exp_acc(float x) { return exp_f32(x); }
GENCORE_HD double exp_acc(double x) { return std::exp(x); }

// std = exp(logvar / 2).
template <typename A>
GENCORE_HD A stddev(A logvar) {
  return exp_acc(A(0.5) * logvar);
}

template <typename A>
GENCORE_HD A sample(A mu, A sd, A eps) {
  return mu + sd * eps;
}

// 2 * KL term of one element (the per-sample sum is halved once at the end).
template <typename A>
GENCORE_HD A kl2_term(A mu, A logvar, A sd) {
  return ((mu * mu + sd * sd) - A(1)) - logvar;
}

// Gradients: gz (dL/dz) and gk (dL/dKL of this element's sample).
template <typename A>
GENCORE_HD A grad_mu(A mu, A gz, A gk) {
  return gz + gk * mu;
}

template <typename A>
GENCORE_HD A grad_logvar(A sd, A eps, A gz, A gk) {
  return A(0.5) * (sd * eps * gz + gk * (sd * sd - A(1)));
}

}  // namespace vae
}  // namespace gencore
