// Per-element diffusion math shared by the CPU and CUDA kernels.
//
// Every sampler step of gencore.diffusion (DDPM, DDIM, Euler, Euler ancestral, Heun stages,
// DPM-Solver++ 2M, flow-matching Euler) is an affine map of a handful of per-element inputs
// once its scalars are known. Python folds a step's scalars (computed in float64 on the host,
// or per sample on the device) into the 14 coefficients below; the kernel evaluates, per
// element, with c the model output, u the unconditional output, g the guidance scale,
// z the noise and e1, e2 the step's extra inputs (previous x0, stage-1 derivative, start sample):
//
//   m    = u + g (c - u)                       (classifier-free guidance; m = c unguided)
//   xs   = x + kpre z                          (Euler's churn: x_hat)
//   x0   = clamp(ax xs + am m, -r, r)          (prediction -> x_0, optional clipping)
//   e    = ex xs + em m + e0 x0                (eps, or the ODE derivative d)
//   prev = px xs + p0 x0 + pe e + pz z + p1 e1 + p2 e2
//   aux  = qe e + q1 e1                        (Heun: the derivative handed to stage 2)
//
// q_sample is the two-term map x_t = a x_0 + b z.
#pragma once

#include <cstdint>

#include "common/gencore.h"

namespace gencore {
namespace diffusion {

enum CoefIndex : int { KPRE = 0, AX, AM, EX, EM, E0, PX, P0, PE, PZ, P1, P2, QE, Q1, kNumCoef };

// Noise source of a step: none, an explicit tensor, or the counter-based noise contract.
enum NoiseMode : int { kNoNoise = 0, kExplicitNoise = 1, kPhiloxNoise = 2 };

template <typename A>
struct Coef {
  A kpre, ax, am, ex, em, e0, px, p0, pe, pz, p1, p2, qe, q1;
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
  c.pe = A(k[PE]);
  c.pz = A(k[PZ]);
  c.p1 = A(k[P1]);
  c.p2 = A(k[P2]);
  c.qe = A(k[QE]);
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

// One element of a step. `m` is the (guided) model output, z the noise (0 without noise),
// e1/e2 the extra inputs (0 when absent). Writes prev, x0 and aux.
template <typename A>
GENCORE_HD void step_element(const Coef<A>& k, A r, A x, A m, A z, A e1, A e2, A& prev, A& x0, A& aux) {
  const A xs = x + k.kpre * z;
  const A xo = clamp_abs(k.ax * xs + k.am * m, r);
  const A e = k.ex * xs + k.em * m + k.e0 * xo;
  prev = k.px * xs + k.p0 * xo + k.pe * e + k.pz * z + k.p1 * e1 + k.p2 * e2;
  aux = k.qe * e + k.q1 * e1;
  x0 = xo;
}

// Forward noising: x_t = a x_0 + b z.
template <typename A>
GENCORE_HD A q_sample_element(A a, A b, A x0, A z) {
  return a * x0 + b * z;
}

}  // namespace diffusion
}  // namespace gencore
