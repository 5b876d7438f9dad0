// The state of a TorchScript module that tch does not reach: tch lists a module's parameters,
// not its buffers (batch-norm running statistics), which a student's checkpoints must hold.
#include <torch/csrc/jit/api/module.h>

#include <cstring>

extern "C" {

// Calls `f(data, name, tensor, is_parameter)` for each parameter of `module` (tch's module
// handle, a torch::jit::Module*), then for each buffer, by their dotted names. Each tensor is a
// new handle on the module's own tensor (the same storage), owned by the callee. Returns 0, or
// 1 with the exception's message in `err`.
int kd_module_state(void* module, void* data, void (*f)(void*, const char*, void*, int), char* err,
                    size_t err_len) {
  try {
    auto* m = static_cast<torch::jit::Module*>(module);
    for (const auto& p : m->named_parameters()) f(data, p.name.c_str(), new at::Tensor(p.value), 1);
    for (const auto& b : m->named_buffers()) f(data, b.name.c_str(), new at::Tensor(b.value), 0);
    return 0;
  } catch (const std::exception& e) {
    if (err_len > 0) {
      std::strncpy(err, e.what(), err_len - 1);
      err[err_len - 1] = '\0';
    }
    return 1;
  }
}
}
