// Python bindings of the diffusion kernels: build the params struct, route to the CPU or CUDA
// kernels. Python passes data pointers (0 for an absent tensor), sizes and scalars.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/registry.h"
#include "diffusion/diffusion.h"

namespace gencore {
namespace diffusion {
namespace {

// Runs `a` on CUDA device `device` (device >= 0) or on the CPU.
template <typename Args>
void run_on(const Args& a, int dtype, int device, uintptr_t cuda_stream, int threads) {
  if (device >= 0) {
#ifdef GENCORE_WITH_CUDA
    return run_cuda(a, dtype, device, cuda_stream);
#else
    (void)cuda_stream;
    throw std::runtime_error("gencore was built without CUDA kernels");
#endif
  }
  run_cpu(a, dtype, threads);
}

template <typename P>
const void* cptr(uintptr_t p) {
  return reinterpret_cast<const P*>(p);
}

void step(uintptr_t x, uintptr_t c, uintptr_t u, uintptr_t z, const std::vector<uintptr_t>& history, uintptr_t prev,
          uintptr_t x0, uintptr_t aux, uintptr_t rows, const std::vector<double>& coef, double guidance, double clip,
          int noise_mode, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample0, int dtype,
          int device, uintptr_t cuda_stream, int threads) {
  if (n <= 0 || D <= 0) return;
  check_arg(D < (int64_t(1) << 34), "diffusion_step: sample size must be below 2**34 elements");
  check_arg(coef.size() == size_t(kNumCoef), "diffusion_step: expected " + std::to_string(kNumCoef) + " coefficients");
  check_arg(history.size() <= size_t(kMaxHistory), "diffusion_step: at most 4 history inputs");
  check_arg(x && c && prev && x0, "diffusion_step: null tensor");
  check_arg(noise_mode != kExplicitNoise || z, "diffusion_step: explicit noise mode needs noise");
  StepArgs a;
  a.x = cptr<void>(x);
  a.c = cptr<void>(c);
  a.u = cptr<void>(u);
  a.z = cptr<void>(z);
  a.n_history = int(history.size());
  for (int j = 0; j < a.n_history; ++j) {
    check_arg(history[j] != 0, "diffusion_step: null history tensor");
    a.h[j] = cptr<void>(history[j]);
  }
  a.prev = reinterpret_cast<void*>(prev);
  a.x0 = reinterpret_cast<void*>(x0);
  a.aux = reinterpret_cast<void*>(aux);
  a.rows = reinterpret_cast<const double*>(rows);
  std::copy(coef.begin(), coef.end(), a.coef);
  a.guidance = guidance;
  a.clip = clip;
  a.noise_mode = noise_mode;
  static_cast<RowNoise&>(a) = RowNoise{n, D, seed, stream, sample0};
  run_on(a, dtype, device, cuda_stream, threads);
}

void q_sample(uintptr_t x0, uintptr_t z, uintptr_t ab, uintptr_t out, uintptr_t z_out, int64_t n, int64_t D,
              uint64_t seed, uint32_t stream, uint64_t sample0, int dtype, int device, uintptr_t cuda_stream,
              int threads) {
  if (n <= 0 || D <= 0) return;
  check_arg(D < (int64_t(1) << 34), "q_sample: sample size must be below 2**34 elements");
  check_arg(x0 && ab && out && (z || z_out), "q_sample: null tensor");
  QSampleArgs a;
  a.x0 = cptr<void>(x0);
  a.z = cptr<void>(z);
  a.ab = reinterpret_cast<const double*>(ab);
  a.out = reinterpret_cast<void*>(out);
  a.z_out = reinterpret_cast<void*>(z_out);
  static_cast<RowNoise&>(a) = RowNoise{n, D, seed, stream, sample0};
  run_on(a, dtype, device, cuda_stream, threads);
}

}  // namespace
}  // namespace diffusion
}  // namespace gencore

GENCORE_BINDINGS(diffusion) {
  namespace py = pybind11;
  using namespace gencore::diffusion;
  m.attr("diffusion_coef_names") = std::vector<std::string> GENCORE_DIFFUSION_COEF_NAMES;
  m.attr("diffusion_max_history") = kMaxHistory;
  m.def("diffusion_step", &step, py::arg("x"), py::arg("c"), py::arg("u"), py::arg("z"), py::arg("history"),
        py::arg("prev"), py::arg("x0"), py::arg("aux"), py::arg("rows"), py::arg("coef"), py::arg("guidance"),
        py::arg("clip"), py::arg("noise_mode"), py::arg("n"), py::arg("sample_numel"), py::arg("seed"),
        py::arg("stream"), py::arg("sample_offset"), py::arg("dtype"), py::arg("device"), py::arg("cuda_stream"),
        py::arg("threads"), GENCORE_NOGIL);
  m.def("diffusion_q_sample", &q_sample, py::arg("x0"), py::arg("z"), py::arg("ab"), py::arg("out"),
        py::arg("z_out"), py::arg("n"), py::arg("sample_numel"), py::arg("seed"), py::arg("stream"),
        py::arg("sample_offset"), py::arg("dtype"), py::arg("device"), py::arg("cuda_stream"), py::arg("threads"),
        GENCORE_NOGIL);
}
