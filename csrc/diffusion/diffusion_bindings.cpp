// Python entry points of the diffusion kernels: arguments -> params struct -> run_on.
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/bind.h"
#include "diffusion/diffusion.h"

namespace gencore {
namespace diffusion {
namespace {

void check_rows(const RowNoise& r, const char* what) {
  check_arg(r.D < (int64_t(1) << 34), std::string(what) + ": sample size must be below 2**34 elements");
}

void step(StepArgs& a, const std::vector<Ptr>& history, const std::vector<double>& coef, const Launch& at) {
  check_arg(coef.size() == size_t(kNumCoef), "diffusion_step: expected " + std::to_string(kNumCoef) + " coefficients");
  check_arg(history.size() <= size_t(kMaxHistory), "diffusion_step: at most 4 history inputs");
  check_arg(a.x && a.c && a.prev && a.x0, "diffusion_step: null tensor");
  check_arg(a.noise_mode != kExplicitNoise || a.z, "diffusion_step: explicit noise mode needs noise");
  check_arg(a.noise_mode >= kNoNoise && a.noise_mode <= kPhiloxNoise, "diffusion_step: unknown noise mode");
  a.n_history = int(history.size());
  for (int j = 0; j < a.n_history; ++j) {
    check_arg(bool(history[j]), "diffusion_step: null history tensor");
    a.h[j] = history[j];
  }
  std::copy(coef.begin(), coef.end(), a.coef);
  if (a.n <= 0 || a.D <= 0) return;
  check_rows(a, "diffusion_step");
  run_on(a, at);
}

void q_sample(const QSampleArgs& a, const Launch& at) {
  check_arg(a.x0 && a.ab && a.out && (a.z || a.z_out), "q_sample: null tensor");
  if (a.n <= 0 || a.D <= 0) return;
  check_rows(a, "q_sample");
  run_on(a, at);
}

}  // namespace
}  // namespace diffusion
}  // namespace gencore

GENCORE_BINDINGS(diffusion) {
  namespace py = pybind11;
  using namespace gencore;
  using namespace gencore::diffusion;
  m.attr("diffusion_coef_names") = std::vector<std::string> GENCORE_DIFFUSION_COEF_NAMES;
  m.attr("diffusion_max_history") = kMaxHistory;
  m.def(
      "diffusion_step",
      [](Ptr x, Ptr c, Ptr u, Ptr z, const std::vector<Ptr>& history, Ptr prev, Ptr x0, Ptr aux, Ptr rows,
         const std::vector<double>& coef, double guidance, double clip, int noise_mode, int64_t n, int64_t D,
         uint64_t seed, uint32_t stream, uint64_t sample_offset, const Launch& at) {
        StepArgs a;
        static_cast<RowNoise&>(a) = RowNoise{n, D, seed, stream, sample_offset};
        a.x = x, a.c = c, a.u = u, a.z = z, a.prev = prev, a.x0 = x0, a.aux = aux, a.rows = rows;
        a.guidance = guidance, a.clip = clip, a.noise_mode = noise_mode;
        step(a, history, coef, at);
      },
      py::arg("x"), py::arg("c"), py::arg("u"), py::arg("z"), py::arg("history"), py::arg("prev"), py::arg("x0"),
      py::arg("aux"), py::arg("rows"), py::arg("coef"), py::arg("guidance"), py::arg("clip"), py::arg("noise_mode"),
      py::arg("n"), py::arg("sample_numel"), py::arg("seed"), py::arg("stream"), py::arg("sample_offset"),
      py::arg("launch"), GENCORE_NOGIL,
      "one fused sampler step (diffusion_math.h: step_element) for 16 coefficients or per-sample rows");
  m.def(
      "diffusion_q_sample",
      [](Ptr x0, Ptr z, Ptr ab, Ptr out, Ptr z_out, int64_t n, int64_t D, uint64_t seed, uint32_t stream,
         uint64_t sample_offset, const Launch& at) {
        q_sample(QSampleArgs{{n, D, seed, stream, sample_offset}, x0, z, ab, out, z_out}, at);
      },
      py::arg("x0"), py::arg("z"), py::arg("ab"), py::arg("out"), py::arg("z_out"), py::arg("n"),
      py::arg("sample_numel"), py::arg("seed"), py::arg("stream"), py::arg("sample_offset"), py::arg("launch"),
      GENCORE_NOGIL, "x_t = ab[:, 0] x0 + ab[:, 1] z per sample (z drawn and written to z_out when z is None)");
}
