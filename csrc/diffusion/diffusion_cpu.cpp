// Fused diffusion steps and forward noising on the CPU: OpenMP over contiguous ranges of
// (sample, block-of-4) units, SIMD inside a sample's row. The math is diffusion_math.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "common/gencore.h"
#include "common/parallel.h"
#include "common/philox.h"
#include "rng/noise_cpu.h"
#include "common/registry.h"
#include <pybind11/stl.h>
#include "diffusion/diffusion.h"

namespace gencore {
namespace diffusion {
namespace {

template <typename T>
struct Row {
  const T* x;
  const T* c;
  const T* u;
  const T* z;
  const T* e1;
  const T* e2;
  T* prev;
  T* x0;
  T* aux;
};

template <typename T, bool Guided, int Extras, bool Aux>
__attribute__((always_inline)) inline void do_element(const Row<T>& p, const Coef<acc_t<T>>& k, acc_t<T> g, acc_t<T> r, int64_t j,
                           acc_t<T> z) {
  using A = acc_t<T>;
  const A c = load(p.c, j);
  const A m = Guided ? guide(c, A(load(p.u, j)), g) : c;
  const A e1 = Extras >= 1 ? A(load(p.e1, j)) : A(0);
  const A e2 = Extras >= 2 ? A(load(p.e2, j)) : A(0);
  A prev, x0, aux;
  step_element(k, r, A(load(p.x, j)), m, z, e1, e2, prev, x0, aux);
  store(p.prev, j, prev);
  store(p.x0, j, x0);
  if (Aux) store(p.aux, j, aux);
}

// Normals of blocks [b, b + count) (count <= kTile) of one sample, written to out[0, 4 count):
// the noise contract's values, from the shared CPU noise tiles (rng/noise_cpu.h).
constexpr int kTile = noise::kTile;

// Units (blocks of 4 elements) per parallel chunk: 32768 elements, torch's own grain size, so
// tensors below that run on the calling thread.
constexpr int64_t kGrainUnits = 8192;

template <typename A>
__attribute__((always_inline)) inline void normals_tile(uint64_t seed, uint32_t stream, uint64_t sample, int64_t b,
                                                        int count, A* out) {
  noise::Words W;
  noise::philox_run(count, uint32_t(b), sample, stream, seed, W, 0);
  noise::transform_tile(count, W, out, false);
}

// Units [k0, k1) of the flattened (sample i, block b) index; block b holds elements 4b..4b+3.
template <typename T, bool Guided, int Noise, int Extras, bool Aux>
GENCORE_SIMD_CLONES void step_units(const StepArgs& a, int64_t k0, int64_t k1) {
  using A = acc_t<T>;
  const int64_t D = a.D;
  const int64_t nb = (D + 3) / 4;
  const A g = A(a.guidance);
  const A r = a.clip > 0 ? A(a.clip) : std::numeric_limits<A>::infinity();
  int64_t k = k0;
  while (k < k1) {
    const int64_t i = k / nb;
    const int64_t b0 = k - i * nb;
    const int64_t b1 = std::min(nb, b0 + (k1 - k));
    const Coef<A> kc = make_coef<A>(a.rows ? a.rows + i * kNumCoef : a.coef);
    const int64_t off = i * D;
    Row<T> p;
    p.x = static_cast<const T*>(a.x) + off;
    p.c = static_cast<const T*>(a.c) + off;
    p.u = Guided ? static_cast<const T*>(a.u) + off : nullptr;
    p.z = Noise == kExplicitNoise ? static_cast<const T*>(a.z) + off : nullptr;
    p.e1 = Extras >= 1 ? static_cast<const T*>(a.e1) + off : nullptr;
    p.e2 = Extras >= 2 ? static_cast<const T*>(a.e2) + off : nullptr;
    p.prev = static_cast<T*>(a.prev) + off;
    p.x0 = static_cast<T*>(a.x0) + off;
    p.aux = Aux ? static_cast<T*>(a.aux) + off : nullptr;
    if constexpr (Noise == kPhiloxNoise) {
      const uint64_t sample = a.sample0 + uint64_t(i);
      const uint64_t seed = a.seed;
      const uint32_t stream = a.stream;
      alignas(64) A zbuf[4 * kTile];
      for (int64_t bt = b0; bt < b1; bt += kTile) {
        const int cnt = int(std::min<int64_t>(kTile, b1 - bt));
        normals_tile<A>(seed, stream, sample, bt, cnt, zbuf);
        const int64_t j0 = 4 * bt;
        const int64_t m = std::min<int64_t>(4 * int64_t(cnt), D - j0);
#pragma omp simd
        for (int64_t q = 0; q < m; ++q) do_element<T, Guided, Extras, Aux>(p, kc, g, r, j0 + q, zbuf[q]);
      }
    } else {
      const int64_t j0 = 4 * b0;
      const int64_t j1 = std::min(D, 4 * b1);
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) {
        const A z = Noise == kExplicitNoise ? A(load(p.z, j)) : A(0);
        do_element<T, Guided, Extras, Aux>(p, kc, g, r, j, z);
      }
    }
    k += b1 - b0;
  }
}

template <typename T, bool Guided, int Noise, int Extras, bool Aux>
void run(const StepArgs& a, int threads) {
  const int64_t units = a.n * ((a.D + 3) / 4);
  parallel_for(units, kGrainUnits, threads, [&](int64_t b, int64_t e) { step_units<T, Guided, Noise, Extras, Aux>(a, b, e); });
}

template <typename T, bool Guided>
void dispatch_kind(const StepArgs& a, int threads) {
  const int extras = (a.e1 ? 1 : 0) + (a.e2 ? 1 : 0);
  const bool aux = a.aux != nullptr;
  check_arg(a.e2 == nullptr || a.e1 != nullptr, "diffusion_step: e2 needs e1");
  if (extras == 0 && !aux) {
    switch (a.noise_mode) {
      case kNoNoise: return run<T, Guided, kNoNoise, 0, false>(a, threads);
      case kExplicitNoise: return run<T, Guided, kExplicitNoise, 0, false>(a, threads);
      case kPhiloxNoise: return run<T, Guided, kPhiloxNoise, 0, false>(a, threads);
      default: throw std::invalid_argument("diffusion_step: unknown noise mode");
    }
  }
  check_arg(a.noise_mode == kNoNoise, "diffusion_step: noise is only supported without extra inputs");
  if (extras == 0 && aux) return run<T, Guided, kNoNoise, 0, true>(a, threads);
  if (extras == 1 && !aux) return run<T, Guided, kNoNoise, 1, false>(a, threads);
  if (extras == 2 && aux) return run<T, Guided, kNoNoise, 2, true>(a, threads);
  throw std::invalid_argument("diffusion_step: unsupported combination of extra inputs and outputs");
}

template <typename T>
void step_cpu(const StepArgs& a, int threads) {
  if (a.u) dispatch_kind<T, true>(a, threads);
  else dispatch_kind<T, false>(a, threads);
}

template <typename T, bool Philox>
GENCORE_SIMD_CLONES void q_units(const QSampleArgs& a, int64_t k0, int64_t k1) {
  using A = acc_t<T>;
  const int64_t D = a.D;
  const int64_t nb = (D + 3) / 4;
  int64_t k = k0;
  while (k < k1) {
    const int64_t i = k / nb;
    const int64_t b0 = k - i * nb;
    const int64_t b1 = std::min(nb, b0 + (k1 - k));
    const A ca = A(a.ab[2 * i]);
    const A cb = A(a.ab[2 * i + 1]);
    const T* x = static_cast<const T*>(a.x0) + i * D;
    T* out = static_cast<T*>(a.out) + i * D;
    if constexpr (Philox) {
      T* zo = static_cast<T*>(a.z_out) + i * D;
      const uint64_t sample = a.sample0 + uint64_t(i);
      alignas(64) A zbuf[4 * kTile];
      for (int64_t bt = b0; bt < b1; bt += kTile) {
        const int cnt = int(std::min<int64_t>(kTile, b1 - bt));
        normals_tile<A>(a.seed, a.stream, sample, bt, cnt, zbuf);
        const int64_t j0 = 4 * bt;
        const int64_t m = std::min<int64_t>(4 * int64_t(cnt), D - j0);
#pragma omp simd
        for (int64_t q = 0; q < m; ++q) {
          store(out, j0 + q, q_sample_element(ca, cb, A(load(x, j0 + q)), zbuf[q]));
          store(zo, j0 + q, zbuf[q]);
        }
      }
    } else {
      const T* z = static_cast<const T*>(a.z) + i * D;
      const int64_t j0 = 4 * b0;
      const int64_t j1 = std::min(D, 4 * b1);
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) store(out, j, q_sample_element(ca, cb, A(load(x, j)), A(load(z, j))));
    }
    k += b1 - b0;
  }
}

template <typename T>
void q_sample_cpu(const QSampleArgs& a, int threads) {
  const int64_t units = a.n * ((a.D + 3) / 4);
  parallel_for(units, kGrainUnits, threads, [&](int64_t b, int64_t e) {
    if (a.z) q_units<T, false>(a, b, e);
    else q_units<T, true>(a, b, e);
  });
}

// Runs the kernel family of `a` on CUDA device `device` (device >= 0) or on the CPU, where
// cpu(T{}) runs it for storage type T.
template <typename Args, typename Cpu>
void run_on(const Args& a, int dtype, int device, uintptr_t cuda_stream, Cpu&& cpu) {
  if (device >= 0) {
#ifdef GENCORE_WITH_CUDA
    return run_cuda(a, dtype, device, cuda_stream);
#else
    throw std::runtime_error("gencore was built without CUDA kernels");
#endif
  }
  dispatch_dtype(dtype, cpu);
}

void step(uintptr_t x, uintptr_t c, uintptr_t u, uintptr_t z, uintptr_t e1, uintptr_t e2, uintptr_t prev,
          uintptr_t x0, uintptr_t aux, uintptr_t rows, const std::vector<double>& coef, double guidance, double clip,
          int noise_mode, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0, int dtype,
          int device, uintptr_t cuda_stream, int threads) {
  if (n <= 0 || D <= 0) return;
  check_arg(D < (int64_t(1) << 34), "diffusion_step: sample size must be below 2**34 elements");
  check_arg(coef.size() == size_t(kNumCoef), "diffusion_step: expected 14 coefficients");
  check_arg(x && c && prev && x0, "diffusion_step: null tensor");
  check_arg(noise_mode != kExplicitNoise || z, "diffusion_step: explicit noise mode needs noise");
  StepArgs a;
  a.x = reinterpret_cast<const void*>(x);
  a.c = reinterpret_cast<const void*>(c);
  a.u = reinterpret_cast<const void*>(u);
  a.z = reinterpret_cast<const void*>(z);
  a.e1 = reinterpret_cast<const void*>(e1);
  a.e2 = reinterpret_cast<const void*>(e2);
  a.prev = reinterpret_cast<void*>(prev);
  a.x0 = reinterpret_cast<void*>(x0);
  a.aux = reinterpret_cast<void*>(aux);
  a.rows = reinterpret_cast<const double*>(rows);
  std::copy(coef.begin(), coef.end(), a.coef);
  a.guidance = guidance;
  a.clip = clip;
  a.noise_mode = noise_mode;
  static_cast<RowNoise&>(a) = RowNoise{n, D, seed, stream, sample0};
  run_on(a, dtype, device, cuda_stream, [&](auto tag) { step_cpu<decltype(tag)>(a, threads); });
}

void q_sample(uintptr_t x0, uintptr_t z, uintptr_t ab, uintptr_t out, uintptr_t z_out, int64_t n, int64_t D,
              uint64_t seed, uint32_t stream, uint64_t sample0, int dtype, int device, uintptr_t cuda_stream,
              int threads) {
  if (n <= 0 || D <= 0) return;
  check_arg(D < (int64_t(1) << 34), "q_sample: sample size must be below 2**34 elements");
  check_arg(x0 && ab && out && (z || z_out), "q_sample: null tensor");
  QSampleArgs a;
  a.x0 = reinterpret_cast<const void*>(x0);
  a.z = reinterpret_cast<const void*>(z);
  a.ab = reinterpret_cast<const double*>(ab);
  a.out = reinterpret_cast<void*>(out);
  a.z_out = reinterpret_cast<void*>(z_out);
  static_cast<RowNoise&>(a) = RowNoise{n, D, seed, stream, sample0};
  run_on(a, dtype, device, cuda_stream, [&](auto tag) { q_sample_cpu<decltype(tag)>(a, threads); });
}

}  // namespace
}  // namespace diffusion
}  // namespace gencore

GENCORE_BINDINGS(diffusion) {
  namespace py = pybind11;
  using namespace gencore::diffusion;
  m.def("diffusion_step", &step, py::arg("x"), py::arg("c"), py::arg("u"), py::arg("z"), py::arg("e1"),
        py::arg("e2"), py::arg("prev"), py::arg("x0"), py::arg("aux"), py::arg("rows"), py::arg("coef"),
        py::arg("guidance"), py::arg("clip"), py::arg("noise_mode"), py::arg("n"), py::arg("sample_numel"),
        py::arg("seed"), py::arg("stream"), py::arg("sample_offset"), py::arg("dtype"), py::arg("device"),
        py::arg("cuda_stream"), py::arg("threads"), GENCORE_NOGIL);
  m.def("diffusion_q_sample", &q_sample, py::arg("x0"), py::arg("z"), py::arg("ab"), py::arg("out"),
        py::arg("z_out"), py::arg("n"), py::arg("sample_numel"), py::arg("seed"), py::arg("stream"),
        py::arg("sample_offset"), py::arg("dtype"), py::arg("device"), py::arg("cuda_stream"), py::arg("threads"),
        GENCORE_NOGIL);
}
