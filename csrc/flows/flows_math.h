// Affine coupling y = x * exp(s) + t (forward) or y = (x - t) * exp(-s) (inverse), with
// s = squash(log_scale): per-element formulas shared by the CPU and CUDA kernels.
//
// float: branch-free polynomial exp/log/tanh/atan (Cephes coefficients, a few ulp) so that
// the CPU chunk loops vectorise without -ffast-math; they propagate NaN and handle +-inf.
// double: the C library. CUDA uses the CUDA math library for both.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/fastmath.h"
#include "common/gencore.h"

// Force inlining on the CPU too, so that the chunk loops see straight-line code to vectorise.
#if defined(__CUDACC__) || !defined(__GNUC__)
#define GENCORE_FLOWS_HD GENCORE_HD
#else
#define GENCORE_FLOWS_HD GENCORE_HD __attribute__((always_inline))
#endif

namespace gencore {
namespace flows {

// Squash codes (gencore/flows/ops.py keeps the same table).
enum Clamp : int { kNone = 0, kAtan = 1, kTanh = 2, kSigmoid = 3 };

// ---- float helpers ---------------------------------------------------------------------
// log(1 + u) for u in [0, 1] (absolute error a few 1e-8).
GENCORE_FLOWS_HD float log1p_unit_f32(float u) {
#if defined(__CUDA_ARCH__)
  return log1pf(u);
#else
  const float x = 1.0f + u;  // in [1, 2]
  const bool big = x > 1.41421356237f;
  const float m = big ? 0.5f * x : x;
  const float e = big ? 1.0f : 0.0f;
  // Recover the rounding error of 1 + u so that tiny u keep full relative precision.
  const float corr = (u - (x - 1.0f)) / x;
  const float f = m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292E-2f;
  y = y * f - 1.1514610310E-1f;
  y = y * f + 1.1676998740E-1f;
  y = y * f - 1.2420140846E-1f;
  y = y * f + 1.4249322787E-1f;
  y = y * f - 1.6668057665E-1f;
  y = y * f + 2.0000714765E-1f;
  y = y * f - 2.4999993993E-1f;
  y = y * f + 3.3333331174E-1f;
  y = y * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return f + y + 0.693359375f * e + corr;
#endif
}

GENCORE_FLOWS_HD float tanh_f32(float x) {
#if defined(__CUDA_ARCH__)
  return tanhf(x);
#else
  const float a = x < 0.0f ? -x : x;
  // |x| < 0.625: odd polynomial; otherwise 1 - 2 / (exp(2|x|) + 1).
  const float z = x * x;
  float p = -5.70498872745E-3f;
  p = p * z + 2.06390887954E-2f;
  p = p * z - 5.37397155531E-2f;
  p = p * z + 1.33314422036E-1f;
  p = p * z - 3.33332819422E-1f;
  const float small = p * z * x + x;
  const float e = exp_f32(2.0f * (a < 20.0f ? a : 20.0f));
  float large = 1.0f - 2.0f / (e + 1.0f);
  large = x < 0.0f ? -large : large;
  return a < 0.625f ? small : (x == x ? large : x);
#endif
}

GENCORE_FLOWS_HD float atan_f32(float x) {
#if defined(__CUDA_ARCH__)
  return atanf(x);
#else
  const float a = x < 0.0f ? -x : x;
  const bool hi = a > 2.414213562373095f;
  const bool mid = a > 0.4142135623730950f;
  // One division: -1/a, (a-1)/(a+1) or a/1 selected before dividing.
  const float num = hi ? -1.0f : (mid ? a - 1.0f : a);
  const float den = hi ? a : (mid ? a + 1.0f : 1.0f);
  const float t = num / den;
  const float y0 = hi ? 1.5707963267948966f : (mid ? 0.7853981633974483f : 0.0f);
  const float z = t * t;
  float p = 8.05374449538e-2f;
  p = p * z - 1.38776856032E-1f;
  p = p * z + 1.99777106478E-1f;
  p = p * z - 3.33329491539E-1f;
  const float r = y0 + (p * z * t + t);
  return x < 0.0f ? -r : (x == x ? r : x);
#endif
}

// ---- dtype-generic wrappers --------------------------------------------------------------
GENCORE_FLOWS_HD float gexp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return exp_f32(x);
#endif
}
GENCORE_FLOWS_HD double gexp(double x) { return exp(x); }
GENCORE_FLOWS_HD float gtanh(float x) { return tanh_f32(x); }
GENCORE_FLOWS_HD double gtanh(double x) { return tanh(x); }
GENCORE_FLOWS_HD float gatan(float x) { return atan_f32(x); }
GENCORE_FLOWS_HD double gatan(double x) { return atan(x); }
GENCORE_FLOWS_HD float glog1p_unit(float u) { return log1p_unit_f32(u); }
GENCORE_FLOWS_HD double glog1p_unit(double u) { return log1p(u); }

// s = squash(v) and, when wanted, ds/dv.
//   kNone:    s = v
//   kAtan:    s = c * 2/pi * atan(v / c)         (FrEIA's soft clamp)
//   kTanh:    s = c * tanh(v / c)
//   kSigmoid: s = log(sigmoid(v + 2))             (Glow; c unused)
template <int C, typename A>
GENCORE_FLOWS_HD A squash(A v, A c, A* ds) {
  if constexpr (C == kNone) {
    if (ds) *ds = A(1);
    return v;
  } else if constexpr (C == kAtan) {
    const A q = v / c;
    if (ds) *ds = A(0.63661977236758134) / (A(1) + q * q);
    return c * A(0.63661977236758134) * gatan(q);
  } else if constexpr (C == kTanh) {
    const A th = gtanh(v / c);
    if (ds) *ds = A(1) - th * th;
    return c * th;
  } else {
    // log sigmoid(z) = min(z, 0) - log1p(exp(-|z|)); d/dz = sigmoid(-z).
    const A z = v + A(2);
    const A az = z < A(0) ? -z : z;
    const A e = gexp(-az);
    if (ds) *ds = (z < A(0) ? A(1) : e) / (A(1) + e);
    return (z < A(0) ? z : A(0)) - glog1p_unit(e);
  }
}

// Forward direction: y = x * exp(s) + t; returns s (the log-determinant term).
// Inverse direction: y = (x - t) * exp(-s); returns s (the caller negates the sum).
template <int C, bool Inverse, typename A>
GENCORE_FLOWS_HD A coupling_value(A x, A t, A v, A c, A& y) {
  const A s = squash<C>(v, c, static_cast<A*>(nullptr));
  if constexpr (Inverse) {
    y = (x - t) * gexp(-s);
  } else {
    y = x * gexp(s) + t;
  }
  return s;
}

// Backward given gy = dL/dy and gl = dL/dlogdet of this sample:
//   forward:  dx = gy e^s,  dv = (gy x e^s + gl) s'(v)              (dt = gy)
//   inverse:  dx = gy e^-s, dv = (-gy (x - t) e^-s - gl) s'(v)     (dt = -dx)
template <int C, bool Inverse, typename A>
GENCORE_FLOWS_HD void coupling_grad(A gy, A gl, A x, A t, A v, A c, A& gx, A& gv) {
  A ds;
  const A s = squash<C>(v, c, &ds);
  if constexpr (Inverse) {
    const A e = gexp(-s);
    gx = gy * e;
    gv = (-(gy * (x - t) * e) - gl) * ds;
  } else {
    const A e = gexp(s);
    gx = gy * e;
    gv = (gy * x * e + gl) * ds;
  }
}

}  // namespace flows
}  // namespace gencore
