// Python entry points of the affine-coupling kernels: arguments -> params struct -> run_on.
#include "common/bind.h"
#include "flows/flows.h"
#include "flows/flows_math.h"

namespace gencore {
namespace flows {
namespace {

void check(const CouplingArgs& a) {
  check_arg(a.n >= 0 && a.D >= 0, "sizes must be non-negative");
  check_arg(a.clamp >= kNone && a.clamp <= kSigmoid, "unknown clamp code");
  check_arg(a.c > 0, "clamp_value must be positive");
}

void forward(const CouplingForward& a, const Launch& at) {
  check(a);
  if (a.n == 0) return;
  run_on(a, at);
}

void backward(const CouplingBackward& a, const Launch& at) {
  check(a);
  if (a.n == 0 || a.D == 0) return;
  run_on(a, at);
}

}  // namespace
}  // namespace flows
}  // namespace gencore

GENCORE_BINDINGS(flows) {
  namespace py = pybind11;
  using namespace gencore;
  using namespace gencore::flows;
  m.def(
      "flows_coupling_forward",
      [](Ptr x, Ptr t, Ptr v, int64_t sx, int64_t st, int64_t sv, int64_t n, int64_t D, int clamp, double c,
         bool inverse, Ptr y, Ptr logdet, const Launch& at) {
        forward(CouplingForward{{x, t, v, sx, st, sv, n, D, clamp, c, inverse}, y, logdet}, at);
      },
      py::arg("x"), py::arg("shift"), py::arg("log_scale"), py::arg("x_stride"), py::arg("shift_stride"),
      py::arg("log_scale_stride"), py::arg("n"), py::arg("sample_numel"), py::arg("clamp"), py::arg("clamp_value"),
      py::arg("inverse"), py::arg("y"), py::arg("logdet"), py::arg("launch"), GENCORE_NOGIL);
  m.def(
      "flows_coupling_backward",
      [](Ptr gy, int64_t sgy, Ptr gl, Ptr x, Ptr t, Ptr v, int64_t sx, int64_t st, int64_t sv, int64_t n, int64_t D,
         int clamp, double c, bool inverse, Ptr gx, Ptr gv, const Launch& at) {
        backward(CouplingBackward{{x, t, v, sx, st, sv, n, D, clamp, c, inverse}, gy, sgy, gl, gx, gv}, at);
      },
      py::arg("grad_y"), py::arg("grad_y_stride"), py::arg("grad_logdet"), py::arg("x"), py::arg("shift"),
      py::arg("log_scale"), py::arg("x_stride"), py::arg("shift_stride"), py::arg("log_scale_stride"), py::arg("n"),
      py::arg("sample_numel"), py::arg("clamp"), py::arg("clamp_value"), py::arg("inverse"), py::arg("grad_x"),
      py::arg("grad_log_scale"), py::arg("launch"), GENCORE_NOGIL);
}
