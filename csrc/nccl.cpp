// The NCCL backend for kd-tui's process groups. Built as its own shared library (it needs
// libtorch_cuda.so, which kd-tui loads only when a GPU may be used) and loaded at run time.
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>

extern "C" {
// A new NCCL backend for `rank` of `size` over `store`; the caller owns the returned reference.
// Throws (C++) on failure: the caller, csrc/dist.cpp, catches it.
c10d::Backend* kd_nccl_create(c10::intrusive_ptr<c10d::Store>* store, int rank, int size,
                              int64_t timeout_ms) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = std::chrono::milliseconds(timeout_ms);
  auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(*store, rank, size, options);
  return backend.release();
}
}
