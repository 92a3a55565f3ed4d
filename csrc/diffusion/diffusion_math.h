// Per-element diffusion math shared by the CPU and CUDA kernels.
//
// Every sampler step of gencore.diffusion is an affine map of a handful of per-element inputs
// once its scalars are known. A solver (python/gencore/diffusion/solvers/) turns a step's
// scalars into the 16 coefficients below (float64 on the host, or per sample on the device);
// the kernel evaluates, per element, with c the model output, u the unconditional output, g the
// guidance scale, z the noise and h1..h4 the step's history inputs (previous x0 predictions, a
// derivative, the sample a stage started from):
//
//   m    = u + g (c - u)                       (classifier-free guidance; m = c unguided)
//   xs   = x + kpre z                          (Euler's churn: x_hat)
//   x0   = clamp(ax xs + am m, -r, r)          (prediction -> x_0, optional clipping)
//   d    = ex xs + em m + e0 x0                (eps, or the ODE derivative)
//   prev = px xs + p0 x0 + pd d + pz z + p1 h1 + p2 h2 + p3 h3 + p4 h4
//   aux  = qd d + q1 h1                        (Heun: the derivative handed to stage 2)
//
// python/gencore/diffusion/reference.py:affine_step is the same map in PyTorch, line for line.
// q_sample is the two-term map x_t = a x_0 + b z.
#pragma once

#include <cstdint>

#include "common/gencore.h"

namespace gencore {
namespace diffusion {

// The coefficient order; gencore.diffusion.Coef has the same fields in the same order.
enum CoefIndex : int { KPRE = 0, AX, AM, EX, EM, E0, PX, P0, PD, PZ, P1, P2, P3, P4, QD, Q1, kNumCoef };
#define GENCORE_DIFFUSION_COEF_NAMES \
  { "kpre", "ax", "am", "ex", "em", "e0", "px", "p0", "pd", "pz", "p1", "p2", "p3", "p4", "qd", "q1" }

// History inputs a step can read (three previous predictions plus a corrector's sample).
constexpr int kMaxHistory = 4;

// Noise source of a step: none, an explicit tensor, or the counter-based noise contract.
enum NoiseMode : int { kNoNoise = 0, kExplicitNoise = 1, kPhiloxNoise = 2 };

template <typename A>
struct Coef {
  A kpre, ax, am, ex, em, e0, px, p0, pd, pz, p[kMaxHistory], qd, q1;
};

template <typename A>
GENCORE_HD Coef<A> make_coef(const double* k) {
  Coef<A> c;
  c.kpre = A(k[KPRE]);
  c.ax = A(k[AX]);
  c.am = A(k[AM]);
  c.ex = A(k[EX]);
  c.em = A(k[EM]);
  c.e0 = A(k[E0]);
  c.px = A(k[PX]);
  c.p0 = A(k[P0]);
  c.pd = A(k[PD]);
  c.pz = A(k[PZ]);
  for (int j = 0; j < kMaxHistory; ++j) c.p[j] = A(k[P1 + j]);
  c.qd = A(k[QD]);
  c.q1 = A(k[Q1]);
  return c;
}

template <typename A>
GENCORE_HD A clamp_abs(A v, A r) {
  // NaN stays NaN; r = +inf (no clipping) leaves every finite value unchanged.
  v = v < -r ? -r : v;
  return v > r ? r : v;
}

template <typename A>
GENCORE_HD A guide(A c, A u, A g) {
  return u + g * (c - u);
}

// One element of a step with H history inputs h[0..H). `m` is the (guided) model output, z the
// noise (0 without noise). Writes prev, x0 and aux.
template <int H, typename A>
GENCORE_HD void step_element(const Coef<A>& k, A r, A x, A m, A z, const A* h, A& prev, A& x0, A& aux) {
  const A xs = x + k.kpre * z;
  const A xo = clamp_abs(k.ax * xs + k.am * m, r);
  const A d = k.ex * xs + k.em * m + k.e0 * xo;
  A p = k.px * xs + k.p0 * xo + k.pd * d + k.pz * z;
#pragma unroll
  for (int j = 0; j < H; ++j) p = p + k.p[j] * h[j];
  prev = p;
  aux = k.qd * d + k.q1 * (H >= 1 ? h[0] : A(0));
  x0 = xo;
}

// Forward noising: x_t = a x_0 + b z.
template <typename A>
GENCORE_HD A q_sample_element(A a, A b, A x0, A z) {
  return a * x0 + b * z;
}

}  // namespace diffusion
}  // namespace gencore
