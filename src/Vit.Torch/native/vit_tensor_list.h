// Handle arrays from C#: the one reader of a (T* const*, n) pair that every export taking a list of tensors uses.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace vit {

// The generator this thread's random ops draw from: one a caller set for the thread (vit_thread_generator_set, so
// that two trainings on two threads each draw their own sequence), else libtorch's default (global) CPU generator.
inline thread_local c10::optional<at::Generator> g_thread_generator;

inline c10::optional<at::Generator> thread_generator() { return g_thread_generator; }

inline at::Generator current_generator() {
  return g_thread_generator.has_value() ? *g_thread_generator : at::detail::getDefaultCPUGenerator();
}

// The tensors of `n` handles (a null array, a null or undefined handle, or a negative count is refused, naming
// `what` and the position); with `cpu_contiguous`, each must also be a contiguous CPU tensor (Gloo's collectives).
inline std::vector<at::Tensor> tensors_of(at::Tensor* const* handles, int n, const char* what, bool cpu_contiguous = false) {
  if (n < 0) throw std::invalid_argument(std::string(what) + ": negative tensor count");
  if (n > 0 && handles == nullptr) throw std::invalid_argument(std::string(what) + ": null tensor array");
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    if (handles[i] == nullptr || !handles[i]->defined())
      throw std::invalid_argument(std::string(what) + ": tensor " + std::to_string(i) + " is null or undefined");
    const at::Tensor& t = *handles[i];
    if (cpu_contiguous && !t.is_contiguous())
      throw std::invalid_argument(std::string(what) + ": tensor " + std::to_string(i) + " is not contiguous");
    if (cpu_contiguous && !t.device().is_cpu())
      throw std::invalid_argument(std::string(what) + ": tensor " + std::to_string(i) + " is not on the CPU (Gloo here is CPU-only)");
    out.push_back(t);
  }
  return out;
}

}  // namespace vit
