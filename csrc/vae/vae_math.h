// Reparameterized Gaussian sampling and its KL divergence to N(0, I), per element; shared by
// the CPU (vae_cpu.cpp) and CUDA (vae_cuda.cu) kernels.
//
//   std = exp(logvar / 2),  z = mu + std * eps
//   KL(N(mu, std^2) || N(0, 1)) = 0.5 * (mu^2 + std^2 - 1 - logvar)     (summed per sample)
//   dz/dmu = 1,  dz/dlogvar = 0.5 * std * eps,  dKL/dmu = mu,  dKL/dlogvar = 0.5 * (std^2 - 1)
//
// The per-sample KL sums are blocked (vae_cpu.cpp) or compensated (vae_cuda.cu) so that their
// error does not grow with the number of elements per sample.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/fastmath.h"
#include "common/gencore.h"

namespace gencore {
namespace vae {

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
