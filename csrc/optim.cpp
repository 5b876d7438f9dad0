// Adam and AdamW in one fused pass over all parameters: libtorch's own _fused_adam_ /
// _fused_adamw_ kernels (what torch.optim.Adam(fused=True) runs), which tch does not bind.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>

#include <cstring>
#include <vector>

namespace {
std::vector<at::Tensor> list(at::Tensor** tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*tensors[i]);
  return out;
}

// An entry point's failure: the exception's message in `err`, and 1.
int failed(const std::exception& e, char* err, size_t err_len) {
  if (err_len > 0) {
    std::strncpy(err, e.what(), err_len - 1);
    err[err_len - 1] = '\0';
  }
  return 1;
}
}  // namespace

extern "C" {

// One step for `n` parameters with their gradients and moments; `step` is a one-element float
// tensor holding the step number (1 for the first), shared by all. Returns 0, or 1 with the
// message in `err`.
int kd_fused_adam(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs,
                  at::Tensor** exp_avg_sqs, at::Tensor* step, size_t n, double lr, double beta1,
                  double beta2, double weight_decay, double eps, int decoupled, char* err,
                  size_t err_len) {
  try {
    c10::AutoGradMode no_grad(false);  // in place on leaf parameters
    auto p = list(params, n), g = list(grads, n), m = list(exp_avgs, n), v = list(exp_avg_sqs, n);
    std::vector<at::Tensor> steps(n, *step);
    if (decoupled) {
      at::_fused_adamw_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    } else {
      at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    }
    return 0;
  } catch (const std::exception& e) {
    return failed(e, err, err_len);
  }
}

// Drops the gradients of `n` parameters (PyTorch's zero_grad(set_to_none=True)): the next
// backward writes fresh ones instead of adding into zeroed buffers, which saves two passes
// over every gradient per step. Returns 0, or 1 with the message in `err`.
int kd_clear_grads(at::Tensor** params, size_t n, char* err, size_t err_len) {
  try {
    for (size_t i = 0; i < n; ++i) params[i]->mutable_grad().reset();
    return 0;
  } catch (const std::exception& e) {
    return failed(e, err, err_len);
  }
}
}
