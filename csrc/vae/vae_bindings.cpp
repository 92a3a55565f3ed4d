// Python entry points of the VAE kernels: arguments -> params struct -> run_on.
#include "common/bind.h"
#include "vae/vae.h"

namespace gencore {
namespace vae {
namespace {

void check_rows(const RowNoise& r) { check_arg(r.D < (int64_t(1) << 34), "sample size must be below 2**34 elements"); }

void forward(const ForwardArgs& a, const Launch& at) {
  check_arg(a.z || a.kl, "vae forward: nothing to compute");
  if (a.n <= 0 || a.D <= 0) return;
  check_rows(a);
  run_on(a, at);
}

void backward(const BackwardArgs& a, const Launch& at) {
  if (a.n <= 0 || a.D <= 0) return;
  check_rows(a);
  run_on(a, at);
}

}  // namespace
}  // namespace vae
}  // namespace gencore

GENCORE_BINDINGS(vae) {
  namespace py = pybind11;
  using namespace gencore;
  using namespace gencore::vae;
  m.def(
      "vae_forward",
      [](Ptr mu, Ptr logvar, Ptr noise, Ptr z, Ptr kl, int64_t n, int64_t D, uint64_t seed, uint32_t stream,
         uint64_t sample_offset, const Launch& at) {
        forward(ForwardArgs{{n, D, seed, stream, sample_offset}, mu, logvar, noise, z, kl}, at);
      },
      py::arg("mu"), py::arg("logvar"), py::arg("noise"), py::arg("z"), py::arg("kl"), py::arg("n"),
      py::arg("sample_numel"), py::arg("seed"), py::arg("stream"), py::arg("sample_offset"), py::arg("launch"),
      GENCORE_NOGIL,
      "z = mu + exp(logvar / 2) * eps and/or the per-sample KL to N(0, I); None skips an output");
  m.def(
      "vae_backward",
      [](Ptr mu, Ptr logvar, Ptr noise, Ptr grad_z, Ptr grad_kl, Ptr grad_mu, Ptr grad_logvar, int64_t n, int64_t D,
         uint64_t seed, uint32_t stream, uint64_t sample_offset, const Launch& at) {
        backward(BackwardArgs{{n, D, seed, stream, sample_offset}, mu, logvar, noise, grad_z, grad_kl, grad_mu,
                              grad_logvar},
                 at);
      },
      py::arg("mu"), py::arg("logvar"), py::arg("noise"), py::arg("grad_z"), py::arg("grad_kl"), py::arg("grad_mu"),
      py::arg("grad_logvar"), py::arg("n"), py::arg("sample_numel"), py::arg("seed"), py::arg("stream"),
      py::arg("sample_offset"), py::arg("launch"), GENCORE_NOGIL,
      "gradients of reparameterize/gaussian_kl wrt mu and logvar; eps recomputed from the counter when noise is None");
}
