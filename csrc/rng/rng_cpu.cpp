// Counter-based noise on the CPU: SIMD over blocks of four words, OpenMP over rows.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/gencore.h"
#include "common/parallel.h"
#include "common/philox.h"
#include "common/registry.h"
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
void fill_cpu(void* out, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0, bool uniform,
              int threads) {
  const noise::Source src{seed, stream, sample0, D};
  const int64_t total = n * D;
  const int64_t tiles = (total + noise::kTileElems - 1) / noise::kTileElems;
  T* o = static_cast<T*>(out);
  // Work is split on tile boundaries; values never depend on the split.
  parallel_for(tiles, 16, threads, [&](int64_t b, int64_t e) {
    fill_range<T>(o, src, b * noise::kTileElems, std::min(total, e * noise::kTileElems), uniform);
  });
}

void fill(uintptr_t out, int dtype, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0,
          bool uniform, int device, uintptr_t cuda_stream, int threads) {
  if (n <= 0 || D <= 0) return;
  check_arg(D < (int64_t(1) << 34), "sample size must be below 2**34 elements");
  void* p = reinterpret_cast<void*>(out);
  if (device >= 0) {
#ifdef GENCORE_WITH_CUDA
    rng::fill_cuda(p, dtype, n, D, seed, stream, sample0, uniform, device, cuda_stream);
    return;
#else
    throw std::runtime_error("gencore was built without CUDA kernels");
#endif
  }
  return dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    return fill_cpu<T>(p, n, D, seed, stream, sample0, uniform, threads);
  });
}

// Raw Philox words: counters (n, 4) and outputs (n, 4) as int64 holding uint32 values.
void philox_words(uintptr_t counter, uint64_t k0, uint64_t k1, int64_t n, uintptr_t out) {
  const int64_t* c = reinterpret_cast<const int64_t*>(counter);
  int64_t* o = reinterpret_cast<int64_t*>(out);
  for (int64_t i = 0; i < n; ++i) {
    u32x4 x;
    for (int q = 0; q < 4; ++q) x.v[q] = uint32_t(c[4 * i + q]);
    const u32x4 y = philox4x32_10(x, uint32_t(k0), uint32_t(k1));
    for (int q = 0; q < 4; ++q) o[4 * i + q] = int64_t(y.v[q]);
  }
}

// float32 -> dtype with the kernels' own rounding (tested against torch's casts).
void cast_from_float(uintptr_t src, uintptr_t dst, int dtype, int64_t n) {
  const float* s = reinterpret_cast<const float*>(src);
  switch (dtype) {
    case kFloat16:
      for (int64_t i = 0; i < n; ++i) store(reinterpret_cast<half_t*>(dst), i, s[i]);
      return;
    case kBFloat16:
      for (int64_t i = 0; i < n; ++i) store(reinterpret_cast<bf16_t*>(dst), i, s[i]);
      return;
    default: throw std::invalid_argument("cast_from_float: dtype must be float16 or bfloat16");
  }
}

void cast_to_float(uintptr_t src, int dtype, uintptr_t dst, int64_t n) {
  float* d = reinterpret_cast<float*>(dst);
  switch (dtype) {
    case kFloat16:
      for (int64_t i = 0; i < n; ++i) d[i] = load(reinterpret_cast<const half_t*>(src), i);
      return;
    case kBFloat16:
      for (int64_t i = 0; i < n; ++i) d[i] = load(reinterpret_cast<const bf16_t*>(src), i);
      return;
    default: throw std::invalid_argument("cast_to_float: dtype must be float16 or bfloat16");
  }
}

}  // namespace
}  // namespace gencore

GENCORE_BINDINGS(rng) {
  namespace py = pybind11;
  using namespace gencore;
  m.def("rng_fill", &fill, py::arg("out"), py::arg("dtype"), py::arg("n"), py::arg("sample_numel"),
        py::arg("seed"), py::arg("stream"), py::arg("sample_offset"), py::arg("uniform"), py::arg("device"),
        py::arg("cuda_stream"), py::arg("threads"), GENCORE_NOGIL);
  m.def("philox_words", &philox_words, GENCORE_NOGIL);
  m.def("cast_from_float", &cast_from_float, GENCORE_NOGIL);
  m.def("cast_to_float", &cast_to_float, GENCORE_NOGIL);
}
