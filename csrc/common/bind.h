// pybind11 conversions shared by the *_bindings.cpp files (never included by kernel sources):
//   Ptr     a kernel's array argument: a tensor (its data_ptr()), an integer address, or None (null);
//   Launch  the tuple (dtype code, device index, CUDA stream, threads) from _native.launch_context.
// Both convert with the GIL held, before GENCORE_NOGIL releases it for the kernel.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

#include "common/launch.h"
#include "common/registry.h"

namespace gencore {

struct Ptr {
  uintptr_t addr = 0;
  template <typename T>
  operator T*() const {  // NOLINT(google-explicit-constructor): fills a params struct field
    return reinterpret_cast<T*>(addr);
  }
  explicit operator bool() const { return addr != 0; }
};

}  // namespace gencore

namespace pybind11 {
namespace detail {

template <>
struct type_caster<gencore::Ptr> {
  PYBIND11_TYPE_CASTER(gencore::Ptr, const_name("Tensor | int | None"));

  bool load(handle src, bool) {
    if (src.is_none()) {
      value.addr = 0;
      return true;
    }
    object addr;
    if (PyLong_Check(src.ptr())) {
      addr = reinterpret_borrow<object>(src);
    } else {
      static PyObject* name = PyUnicode_InternFromString("data_ptr");
      PyObject* args[] = {src.ptr()};
      addr = reinterpret_steal<object>(
          PyObject_VectorcallMethod(name, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr));
      if (!addr) {
        PyErr_Clear();
        return false;
      }
    }
    const unsigned long long v = PyLong_AsUnsignedLongLong(addr.ptr());
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value.addr = uintptr_t(v);
    return true;
  }
};

template <>
struct type_caster<gencore::Launch> {
  PYBIND11_TYPE_CASTER(gencore::Launch, const_name("tuple[int, int, int, int]"));

  bool load(handle src, bool) {
    if (!PyTuple_Check(src.ptr()) || PyTuple_GET_SIZE(src.ptr()) != 4) return false;
    PyObject* t = src.ptr();
    const long dtype = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
    const long device = PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
    const unsigned long long stream = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(t, 2));
    const long threads = PyLong_AsLong(PyTuple_GET_ITEM(t, 3));
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value = gencore::Launch{int(dtype), int(device), uintptr_t(stream), int(threads)};
    return true;
  }
};

}  // namespace detail
}  // namespace pybind11
