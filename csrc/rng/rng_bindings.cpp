// Python entry points of the noise kernels: arguments -> params struct -> run_on.
#include "common/bind.h"
#include "rng/rng.h"

namespace gencore {
namespace rng {
namespace {

void fill(const FillArgs& a, const Launch& at) {
  if (a.n <= 0 || a.D <= 0) return;
  check_arg(a.D < (int64_t(1) << 34), "sample size must be below 2**34 elements");
  run_on(a, at);
}

}  // namespace
}  // namespace rng
}  // namespace gencore

GENCORE_BINDINGS(rng) {
  namespace py = pybind11;
  using namespace gencore;
  using namespace gencore::rng;
  m.def(
      "rng_fill",
      [](Ptr out, int64_t n, int64_t D, uint64_t seed, uint32_t stream, uint64_t sample_offset, bool uniform,
         const Launch& at) { fill(FillArgs{{n, D, seed, stream, sample_offset}, out, uniform}, at); },
      py::arg("out"), py::arg("n"), py::arg("sample_numel"), py::arg("seed"), py::arg("stream"),
      py::arg("sample_offset"), py::arg("uniform"), py::arg("launch"), GENCORE_NOGIL);
  m.def(
      "philox_words",
      [](Ptr counter, uint64_t k0, uint64_t k1, int64_t n, Ptr out) { philox_words(counter, k0, k1, n, out); },
      py::arg("counter"), py::arg("k0"), py::arg("k1"), py::arg("n"), py::arg("out"), GENCORE_NOGIL);
  m.def(
      "cast_from_float", [](Ptr src, Ptr dst, int dtype, int64_t n) { cast_from_float(src, dst, dtype, n); },
      py::arg("src"), py::arg("dst"), py::arg("dtype"), py::arg("n"), GENCORE_NOGIL);
  m.def(
      "cast_to_float", [](Ptr src, int dtype, Ptr dst, int64_t n) { cast_to_float(src, dtype, dst, n); },
      py::arg("src"), py::arg("dtype"), py::arg("dst"), py::arg("n"), GENCORE_NOGIL);
}
