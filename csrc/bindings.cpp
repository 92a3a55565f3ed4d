// gencore._C: the native kernels. No libtorch: Python passes data pointers, sizes, scalars
// and (for CUDA) the device index and stream handle.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <string>
#include <utility>
#include <vector>

#include "common/registry.h"

#ifdef GENCORE_WITH_CUDA
namespace gencore {
namespace cuda {
int device_count();  // common/cuda_info.cu
}
}  // namespace gencore
#endif

namespace gencore {

static std::vector<std::pair<const char*, BindFn>>& registry() {
  static std::vector<std::pair<const char*, BindFn>> r;
  return r;
}

BindingRegistrar::BindingRegistrar(const char* name, BindFn fn) { registry().emplace_back(name, fn); }

void bind_all(pybind11::module_& m) {
  for (auto& entry : registry()) entry.second(m);
}

static std::string simd_level() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse2";
#elif defined(__aarch64__)
  return "neon";
#else
  return "scalar";
#endif
}

}  // namespace gencore

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  m.doc() = "gencore native kernels";
#ifdef GENCORE_VERSION
  m.attr("__version__") = GENCORE_VERSION;
#endif
  m.def("simd", &gencore::simd_level, "SIMD level the CPU kernels dispatch to");
  m.def("max_threads", []() { return omp_get_max_threads(); });
#ifdef GENCORE_WITH_CUDA
  m.attr("cuda_compiled") = true;
  m.attr("cuda_archs") = std::string(GENCORE_CUDA_ARCHS);
  m.def("cuda_device_count", []() { return gencore::cuda::device_count(); });
#else
  m.attr("cuda_compiled") = false;
  m.attr("cuda_archs") = std::string("");
  m.def("cuda_device_count", []() { return 0; });
#endif
  std::vector<std::string> families;
  for (auto& entry : gencore::registry()) families.emplace_back(entry.first);
  m.attr("families") = families;
  gencore::bind_all(m);
}
