// Mixed precision for kd-tui: libtorch's autocast with a chosen dtype (tch can only switch
// CUDA autocast on, in float16). Autocast state is per thread; a region is begin .. end on the
// thread that runs the forward pass.
#include <ATen/autocast_mode.h>

namespace {
at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }
}  // namespace

extern "C" {

// Returns 0, or 1 if libtorch refused (the message is lost; autocast stays off).
int kd_autocast_begin(int cuda) {
  try {
    at::autocast::set_autocast_dtype(device_type(cuda), at::kBFloat16);
    at::autocast::set_autocast_enabled(device_type(cuda), true);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return 1;
  }
}

void kd_autocast_end(int cuda) {
  try {
    // The cache of lower-precision weight copies lives for one region: weights change each step.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_type(cuda), false);
  } catch (...) {
  }
}
}
