// The kernel gradient of a depthwise convolution as an XLA FFI handler for the CPU.
//
//   dk[i, j, c] = sum over n, oh, ow of x[n, oh * sh + i, ow * sw + j, c] * g[n, oh, ow, c]
//
// x is the padded NHWC input, g the output gradient. XLA compiles this sum (per tap, over
// batch and space) to several passes over x and g; here one pass reads each output
// position's g once for all taps, with one partial sum per thread over a slice of the batch.
// Built as the Python extension module _skinscreen_native (pyproject.toml); screening/layers.py
// registers the handler and falls back to its XLA formulation when the module is absent.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Shape {
  int64_t hp, wp, c, oh, ow, kh, kw, sh, sw;
};

void Accumulate(const float* x, const float* g, float* acc, int64_t n0, int64_t n1, const Shape& s) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t oh = 0; oh < s.oh; ++oh) {
      for (int64_t ow = 0; ow < s.ow; ++ow) {
        const float* gp = g + ((n * s.oh + oh) * s.ow + ow) * s.c;
        for (int64_t i = 0; i < s.kh; ++i) {
          for (int64_t j = 0; j < s.kw; ++j) {
            const float* xp = x + ((n * s.hp + oh * s.sh + i) * s.wp + ow * s.sw + j) * s.c;
            float* a = acc + (i * s.kw + j) * s.c;
            for (int64_t c = 0; c < s.c; ++c) a[c] += xp[c] * gp[c];
          }
        }
      }
    }
  }
}

ffi::Error KernelGrad(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dk, int64_t kh,
                      int64_t kw, int64_t sh, int64_t sw) {
  auto xd = x.dimensions();
  auto gd = g.dimensions();
  if (xd.size() != 4 || gd.size() != 4 || xd[0] != gd[0] || xd[3] != gd[3] || (gd[1] - 1) * sh + kh > xd[1] ||
      (gd[2] - 1) * sw + kw > xd[2]) {
    return ffi::Error::InvalidArgument("depthwise kernel gradient: x and g shapes do not match the kernel and strides");
  }
  const int64_t batch = xd[0];
  const Shape s{xd[1], xd[2], xd[3], gd[1], gd[2], kh, kw, sh, sw};
  const int64_t size = kh * kw * s.c;
  const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(batch, 1));
  std::vector<float> partial(threads * size, 0.0f);
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) {
    pool.emplace_back(Accumulate, x.typed_data(), g.typed_data(), partial.data() + t * size, t * batch / threads,
                      (t + 1) * batch / threads, std::cref(s));
  }
  Accumulate(x.typed_data(), g.typed_data(), partial.data(), 0, batch / threads, s);
  for (auto& thread : pool) thread.join();
  float* out = dk->typed_data();
  for (int64_t k = 0; k < size; ++k) {
    float sum = 0.0f;
    for (int64_t t = 0; t < threads; ++t) sum += partial[t * size + k];
    out[k] = sum;
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(DepthwiseKernelGrad, KernelGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x, padded NHWC
                                  .Arg<ffi::Buffer<ffi::F32>>()   // g, NHWC
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dk, (kh, kw, C)
                                  .Attr<int64_t>("kh")
                                  .Attr<int64_t>("kw")
                                  .Attr<int64_t>("sh")
                                  .Attr<int64_t>("sw"));

static PyObject* HandlerCapsule(PyObject*, PyObject*) {
  return PyCapsule_New(reinterpret_cast<void*>(DepthwiseKernelGrad), nullptr, nullptr);
}

static PyMethodDef kMethods[] = {
    {"depthwise_kernel_grad", HandlerCapsule, METH_NOARGS, "The XLA FFI handler, as a capsule for jax.ffi."},
    {nullptr, nullptr, 0, nullptr}};

static PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_skinscreen_native",
                              "Native CPU kernels for screening.layers.", -1, kMethods};

PyMODINIT_FUNC PyInit__skinscreen_native() { return PyModule_Create(&kModule); }
