// Each kernel family registers its pybind11 bindings from its own translation unit, so
// adding a family never touches a central file:
//   GENCORE_BINDINGS(vae) { m.def(...); }
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace gencore {

using BindFn = void (*)(pybind11::module_&);

struct BindingRegistrar {
  BindingRegistrar(const char* name, BindFn fn);
};

void bind_all(pybind11::module_& m);

// Raised (as ValueError) for arguments the Python layer should already have rejected.
inline void check_arg(bool ok, const std::string& msg) {
  if (!ok) throw std::invalid_argument(msg);
}

}  // namespace gencore

#define GENCORE_BINDINGS(name)                                                         \
  static void gencore_bind_##name(pybind11::module_& m);                               \
  static ::gencore::BindingRegistrar gencore_registrar_##name(#name, gencore_bind_##name); \
  static void gencore_bind_##name(pybind11::module_& m)

// Release the GIL around kernels.
#define GENCORE_NOGIL pybind11::call_guard<pybind11::gil_scoped_release>()
