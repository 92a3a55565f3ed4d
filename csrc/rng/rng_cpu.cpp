// Counter-based noise on the CPU: SIMD over blocks of four words, OpenMP over rows.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "common/gencore.h"
#include "common/parallel.h"
#include "common/philox.h"
#include "rng/noise_cpu.h"
#include "rng/rng.h"

namespace gencore {
namespace {

// Flat elements [e0, e1) of the (n, D) output, one tile of noise::kTileElems at a time:
// float/double outputs receive the draws directly, 16-bit outputs via a float tile.
template <typename T>
GENCORE_SIMD_CLONES void fill_range(T* out, noise::Source src, int64_t e0, int64_t e1, bool uniform) {
  using A = acc_t<T>;
  alignas(64) A buf[noise::kTileElems];
  for (int64_t e = e0; e < e1; e += noise::kTileElems) {
    const int64_t len = e1 - e < noise::kTileElems ? e1 - e : noise::kTileElems;
    if constexpr (std::is_same<T, A>::value) {
      noise::draw(src, e, len, out + e, uniform);
    } else {
      noise::draw(src, e, len, buf, uniform);
      if (uniform) {
        constexpr bool kBF16 = std::is_same<T, bf16_t>::value;
#pragma omp simd
        for (int64_t q = 0; q < len; ++q) store(out, e + q, uniform_clamp16(buf[q], kBF16));
      } else {
#pragma omp simd
        for (int64_t q = 0; q < len; ++q) store(out, e + q, buf[q]);
      }
    }
  }
}

template <typename T>
void fill_cpu(const rng::FillArgs& a, int threads) {
  const noise::Source src{a.seed, a.stream, a.sample0, a.D};
  const int64_t total = a.n * a.D;
  const int64_t tiles = (total + noise::kTileElems - 1) / noise::kTileElems;
  T* o = static_cast<T*>(a.out);
  const bool uniform = a.uniform;
  // Work is split on tile boundaries; values never depend on the split.
  parallel_for(tiles, 16, threads, [&](int64_t b, int64_t e) {
    fill_range<T>(o, src, b * noise::kTileElems, std::min(total, e * noise::kTileElems), uniform);
  });
}

}  // namespace

namespace rng {

void run_cpu(const FillArgs& a, const Launch& at) {
  dispatch_dtype(at.dtype, [&](auto tag) { fill_cpu<decltype(tag)>(a, at.threads); });
}

void philox_words(const int64_t* counter, uint64_t k0, uint64_t k1, int64_t n, int64_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    u32x4 x;
    for (int q = 0; q < 4; ++q) x.v[q] = uint32_t(counter[4 * i + q]);
    const u32x4 y = philox4x32_10(x, uint32_t(k0), uint32_t(k1));
    for (int q = 0; q < 4; ++q) out[4 * i + q] = int64_t(y.v[q]);
  }
}

void cast_from_float(const float* src, void* dst, int dtype, int64_t n) {
  switch (dtype) {
    case kFloat16:
      for (int64_t i = 0; i < n; ++i) store(static_cast<half_t*>(dst), i, src[i]);
      return;
    case kBFloat16:
      for (int64_t i = 0; i < n; ++i) store(static_cast<bf16_t*>(dst), i, src[i]);
      return;
    default: throw std::invalid_argument("cast_from_float: dtype must be float16 or bfloat16");
  }
}

void cast_to_float(const void* src, int dtype, float* dst, int64_t n) {
  switch (dtype) {
    case kFloat16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load(static_cast<const half_t*>(src), i);
      return;
    case kBFloat16:
      for (int64_t i = 0; i < n; ++i) dst[i] = load(static_cast<const bf16_t*>(src), i);
      return;
    default: throw std::invalid_argument("cast_to_float: dtype must be float16 or bfloat16");
  }
}

}  // namespace rng
}  // namespace gencore
