// gencore: definitions shared by every kernel family, on the host and the device.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>

#if defined(__CUDACC__)
#define GENCORE_HD __host__ __device__ __forceinline__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#else
#define GENCORE_HD inline __attribute__((always_inline))
#endif

// Runtime-dispatched SIMD for CPU chunk functions: GCC/Clang build one clone per ISA and an
// ifunc resolver picks the best at load time; any x86-64 runs the "default" clone.
#if !defined(__CUDACC__) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(GENCORE_NO_CLONES)
#define GENCORE_SIMD_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define GENCORE_SIMD_CLONES
#endif

namespace gencore {

// dtype codes passed from Python (gencore/_native.py keeps the same table).
enum DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// 16-bit storage types. Conversions are bit-exact round-to-nearest-even, identical on host and
// device, so the CPU tests cover the CUDA path's numerics.
struct half_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

GENCORE_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
GENCORE_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

GENCORE_HD float to_float(bf16_t v) { return bits_to_float(uint32_t(v.bits) << 16); }
GENCORE_HD bf16_t from_float_bf16(float f) {
  const uint32_t u = float_to_bits(f);
  const uint32_t nan = (u >> 16) | 0x40u;                     // quiet NaN, sign and payload kept
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  return bf16_t{uint16_t((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded)};
}

// Half conversions on the host are branch free (integer selects, one exact float multiply or add),
// so the loops that load and store float16 vectorise; they equal the CUDA intrinsics bit for bit
// (round to nearest even; NaN becomes the quiet NaN 0x7e00 with the sign kept).
GENCORE_HD float to_float(half_t v) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(v.bits));
#else
  const uint32_t h = v.bits;
  const uint32_t em = h & 0x7fffu;
  const uint32_t normal = (em << 13) + 0x38000000u;  // exponent rebiased by 127 - 15
  const uint32_t infnan = (em << 13) + 0x70000000u;  // exponent 31 -> 255, payload kept
  const uint32_t sub = float_to_bits(float(int32_t(em)) * 5.9604644775390625e-08f);  // em * 2**-24, exact
  uint32_t u = em >= 0x7c00u ? infnan : normal;
  u = em < 0x400u ? sub : u;
  return bits_to_float(u | ((h & 0x8000u) << 16));
#endif
}
GENCORE_HD half_t from_float_half(float f) {
#if defined(__CUDA_ARCH__)
  return half_t{__half_as_ushort(__float2half_rn(f))};
#else
  const uint32_t u = float_to_bits(f);
  const uint32_t au = u & 0x7fffffffu;
  // Normal results: drop 13 mantissa bits, rounding to nearest even (a carry into the exponent
  // is correct, up to infinity at 65520).
  const uint32_t norm = ((au - 0x38000000u) + 0xfffu + ((au >> 13) & 1u)) >> 13;
  // Below 2**-14: adding 0.5 rounds |f| to a multiple of 2**-24 (round to nearest even), which
  // leaves the half's subnormal mantissa in the low bits.
  const uint32_t sub = float_to_bits(bits_to_float(au) + 0.5f) - 0x3f000000u;
  uint32_t r = au < 0x38800000u ? sub : norm;
  r = au >= 0x477ff000u ? 0x7c00u : r;  // overflow -> inf
  r = au > 0x7f800000u ? 0x7e00u : r;   // NaN
  return half_t{uint16_t(r | ((u >> 16) & 0x8000u))};
#endif
}

// Load/store with the accumulation type: float for 16-bit and float32, double for float64.
template <typename T> struct acc_type { using type = T; };
template <> struct acc_type<half_t> { using type = float; };
template <> struct acc_type<bf16_t> { using type = float; };
template <typename T> using acc_t = typename acc_type<T>::type;

// Calls f(T{}) with T the storage type of a dtype code (host code: kernel launchers and CPU loops).
template <typename F>
inline void dispatch_dtype(int dtype, F&& f) {
  switch (dtype) {
    case kFloat32: return f(float{});
    case kFloat64: return f(double{});
    case kFloat16: return f(half_t{});
    case kBFloat16: return f(bf16_t{});
    default: throw std::invalid_argument("unsupported dtype code");
  }
}

GENCORE_HD float load(const float* p, int64_t i) { return p[i]; }
GENCORE_HD double load(const double* p, int64_t i) { return p[i]; }
GENCORE_HD float load(const half_t* p, int64_t i) { return to_float(p[i]); }
GENCORE_HD float load(const bf16_t* p, int64_t i) { return to_float(p[i]); }
GENCORE_HD void store(float* p, int64_t i, float v) { p[i] = v; }
GENCORE_HD void store(double* p, int64_t i, double v) { p[i] = v; }
GENCORE_HD void store(half_t* p, int64_t i, float v) { p[i] = from_float_half(v); }
GENCORE_HD void store(bf16_t* p, int64_t i, float v) { p[i] = from_float_bf16(v); }

}  // namespace gencore
