// vit_native: a thin C ABI over libtorch for Vit.Torch.
//
// Rules (see shared/DESIGN.md "Native boundary rules"):
//  - Plain C types and opaque handles only. A tensor handle is a heap-allocated at::Tensor owned by the
//    caller; it is released with exactly one vit_tensor_free. vit_tensor_free(NULL) is a no-op.
//  - Every export returns a status (0 = ok, 1 = error) and never lets a C++ exception escape. The error text
//    of the last failed call on this thread is copied into a caller-owned buffer by vit_last_error.
//  - Results come back through out-parameters. A tensor out-parameter, on success, is a new handle the
//    caller owns.
//  - The shim knows tensors and ops, not ViT.
#include "vit_common.h"
#include "vit_fused.h"
#include "vit_tensor_list.h"

#include <torch/torch.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <malloc.h>
#include <algorithm>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

// Bumped whenever an export's signature or meaning changes; checked by the C# loader.
static constexpr int kAbiVersion = 9;  // 2: imaging exports (vit_imaging.cpp); 3: interpolate, AdamW lr scales; 4: generator state;
                                       // 5: autocast, inference mode, fused attention, linear + GELU; 6: per-thread threads; 7: c10d/Gloo;
                                       // 8: bucketed gradient allreduce; 9: per-thread generators, nbytes

using T = at::Tensor;

namespace {

using vit::check_out;
using vit::set_error;
std::atomic<int64_t> g_live_tensors{0};

// Owns a new handle for the caller; counted so tests can check that nothing leaks.
T* wrap(T value) {
  auto* h = new T(std::move(value));
  g_live_tensors.fetch_add(1, std::memory_order_relaxed);
  return h;
}

const T& ref(const T* h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  if (!h->defined()) throw std::invalid_argument("undefined tensor");
  return *h;
}

T& mref(T* h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  if (!h->defined()) throw std::invalid_argument("undefined tensor");
  return *h;
}

// Our dtype codes are part of the ABI; keep in sync with DType in C#.
at::ScalarType to_scalar_type(int code) {
  switch (code) {
    case 0: return at::kFloat;
    case 1: return at::kDouble;
    case 2: return at::kLong;
    case 3: return at::kInt;
    case 4: return at::kByte;
    case 5: return at::kBool;
    case 6: return at::kHalf;
    case 7: return at::kBFloat16;
    case 8: return at::kShort;
    case 9: return at::kChar;
    default: throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  }
}

int from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kLong: return 2;
    case at::kInt: return 3;
    case at::kByte: return 4;
    case at::kBool: return 5;
    case at::kHalf: return 6;
    case at::kBFloat16: return 7;
    case at::kShort: return 8;
    case at::kChar: return 9;
    default: return -1;
  }
}

at::Device to_device(int type, int index) {
  if (type == 0) return at::Device(at::kCPU);
  if (type == 1) {
    if (!torch::cuda::is_available())
      throw std::invalid_argument(
          "CUDA was requested but the linked libtorch has no CUDA support or no CUDA device is visible; "
          "use the CPU device");
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      throw std::invalid_argument("CUDA device " + std::to_string(index) + " does not exist (" +
                                  std::to_string(torch::cuda::device_count()) + " visible)");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}

at::TensorOptions options(int dtype, int device_type, int device_index) {
  return at::TensorOptions().dtype(to_scalar_type(dtype)).device(to_device(device_type, device_index));
}

at::IntArrayRef dims_of(const int64_t* dims, int n) {
  if (n < 0) throw std::invalid_argument("negative dimension count");
  if (n > 0 && dims == nullptr) throw std::invalid_argument("null dimension array");
  return at::IntArrayRef(dims, static_cast<size_t>(n));
}

using vit::tensors_of;

// New handles for several results, all or none: if making one fails, the ones made are freed, so the caller is
// never left owning handles of a call that reported a failure.
void wrap_all(std::vector<T> values, T** outs) {
  std::vector<std::unique_ptr<T>> made;
  made.reserve(values.size());
  for (auto& v : values) made.emplace_back(new T(std::move(v)));
  for (size_t i = 0; i < made.size(); ++i) outs[i] = made[i].release();
  g_live_tensors.fetch_add(static_cast<int64_t>(made.size()), std::memory_order_relaxed);
}

// Throws unless 0 <= value <= 1 (NaN included), naming the rejected value: "dropout probability must be in
// [0, 1], got 1.5".
void check_unit_interval(double value, const char* what) {
  if (value >= 0 && value <= 1) return;
  std::ostringstream text;
  text << what << " must be in [0, 1], got ";
  if (std::isnan(value))
    text << "NaN";  // .NET's NaN has the sign bit set and would print as "-nan"
  else
    text << value;
  throw std::invalid_argument(text.str());
}

using openblas_set_fn = void (*)(int);
using openblas_get_fn = int (*)();

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Library, errors, versions, threads, devices, seeds
// ---------------------------------------------------------------------------------------------------------

VIT_API int vit_abi_version() { return kAbiVersion; }

// Copies the last error of this thread into buf (NUL-terminated, truncated to cap). Returns the full length.
VIT_API int vit_last_error(char* buf, int cap) {
  const int n = vit::g_last_error_length;
  if (buf != nullptr && cap > 0) {
    const int m = n < cap - 1 ? n : cap - 1;
    std::memcpy(buf, vit::g_last_error, static_cast<size_t>(m));
    buf[m] = '\0';
  }
  return n;
}

// Writes the libtorch version ("1.13.1") into buf.
VIT_API int vit_torch_version(char* buf, int cap) {
  VIT_TRY
  check_out(buf);
  std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                  std::to_string(TORCH_VERSION_PATCH);
  if (cap <= static_cast<int>(v.size())) throw std::invalid_argument("version buffer too small");
  std::memcpy(buf, v.c_str(), v.size() + 1);
  VIT_CATCH
}

// Process set-up, called once by the C# loader. With tune_malloc, glibc's malloc keeps freed blocks of up to
// 64 MiB for reuse instead of returning them to the kernel and faulting them in again on the next step:
// measured here, a training step of a small ViT otherwise takes ~10x the page faults of PyTorch's and runs
// ~25% slower (glibc's dynamic mmap threshold does not settle when libtorch's worker threads allocate).
VIT_API int vit_runtime_init(int tune_malloc) {
  VIT_TRY
  if (tune_malloc != 0) {
    if (mallopt(M_MMAP_THRESHOLD, 64 << 20) != 1) throw std::runtime_error("mallopt(M_MMAP_THRESHOLD) failed");
    if (mallopt(M_TRIM_THRESHOLD, 256 << 20) != 1) throw std::runtime_error("mallopt(M_TRIM_THRESHOLD) failed");
  }
  VIT_CATCH
}

VIT_API int64_t vit_live_tensor_count() { return g_live_tensors.load(std::memory_order_relaxed); }

// One knob for intra-op parallelism: libtorch's pool and OpenBLAS's pool (when OpenBLAS is the BLAS).
// blas_threads < 0 means "same as torch_threads".
VIT_API int vit_threads_set(int torch_threads, int blas_threads) {
  VIT_TRY
  if (torch_threads < 1) throw std::invalid_argument("thread count must be at least 1");
  at::set_num_threads(torch_threads);
  auto set_blas = reinterpret_cast<openblas_set_fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set_blas != nullptr) set_blas(blas_threads < 0 ? torch_threads : (blas_threads < 1 ? 1 : blas_threads));
  VIT_CATCH
}

VIT_API int vit_threads_get(int* torch_threads, int* blas_threads) {
  VIT_TRY
  check_out(torch_threads);
  check_out(blas_threads);
  *torch_threads = at::get_num_threads();
  auto get_blas = reinterpret_cast<openblas_get_fn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  *blas_threads = get_blas != nullptr ? get_blas() : -1;
  VIT_CATCH
}

// This thread's share of intra-op parallelism: with OpenMP (Debian's libtorch), the thread count is an OpenMP ICV of
// the calling thread, so concurrent callers can each run with their own count (a prediction pool gives each engine
// cores / engines). ATen initialises a thread's count from the global one on its first parallel call, so that is done
// first; the global count and oneDNN's caches stay as they are. *previous receives the count before the call.
// Without OpenMP this changes nothing and reports the global count.
using omp_set_fn = void (*)(int);
using omp_get_fn = int (*)();
VIT_API int vit_threads_local_set(int threads, int* previous) {
  VIT_TRY
  check_out(previous);
  if (threads < 1) throw std::invalid_argument("thread count must be at least 1");
  *previous = at::get_num_threads();  // also ATen's lazy per-thread initialisation
  auto set = reinterpret_cast<omp_set_fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set != nullptr) set(threads);
  VIT_CATCH
}

// Writes libtorch's parallel configuration text (OpenMP, MKL/BLAS, thread counts).
VIT_API int vit_parallel_info(char* buf, int cap) {
  VIT_TRY
  check_out(buf);
  if (cap <= 0) throw std::invalid_argument("buffer capacity must be positive");
  std::string s = at::get_parallel_info();
  const int m = static_cast<int>(s.size()) < cap - 1 ? static_cast<int>(s.size()) : cap - 1;
  std::memcpy(buf, s.data(), static_cast<size_t>(m));
  buf[m] = '\0';
  VIT_CATCH
}

VIT_API int vit_cuda_device_count(int* out) {
  VIT_TRY
  check_out(out);
  *out = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  VIT_CATCH
}

// Seeds the generator this thread draws from (its own, when one is set; else the global one, torch.manual_seed).
VIT_API int vit_manual_seed(uint64_t seed) {
  VIT_TRY
  if (auto g = vit::thread_generator()) {
    std::lock_guard<std::mutex> lock(g->mutex());
    g->set_current_seed(seed);
  } else {
    torch::manual_seed(seed);
  }
  VIT_CATCH
}

// Gives this thread its own CPU generator seeded with `seed` (use != 0), or goes back to the global one (use == 0).
// A fresh generator seeded s draws what the global one draws after manual_seed(s).
VIT_API int vit_thread_generator_set(int use, uint64_t seed) {
  VIT_TRY
  if (use != 0)
    vit::g_thread_generator = at::detail::createCPUGenerator(seed);
  else
    vit::g_thread_generator.reset();
  VIT_CATCH
}

// The state of libtorch's default CPU generator (dropout, drop path, random init) as a new uint8 tensor, for
// checkpoints that resume bit for bit (torch.get_rng_state).
VIT_API int vit_rng_get_state(T** out) {
  VIT_TRY
  check_out(out);
  auto gen = vit::current_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  *out = wrap(gen.get_state());
  VIT_CATCH
}

// Restores a state from vit_rng_get_state (torch.set_rng_state); libtorch checks its size and type.
VIT_API int vit_rng_set_state(const T* state) {
  VIT_TRY
  auto gen = vit::current_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(ref(state));
  VIT_CATCH
}

// Thread-local autograd switch (like torch.no_grad). Returns the previous state through prev.
VIT_API int vit_grad_set_enabled(int enabled, int* prev) {
  VIT_TRY
  check_out(prev);
  *prev = at::GradMode::is_enabled() ? 1 : 0;
  at::GradMode::set_enabled(enabled != 0);
  VIT_CATCH
}

// Mixed precision, as torch.autocast's __enter__ does on the calling thread: remembers the previous switch and
// dtype of the device type's autocast (0 CPU, 1 CUDA) in *prev_enabled / *prev_dtype, sets the new ones and
// counts one more nesting level. dtype is a dtype code (bfloat16 or float16); enabled 0 makes a region that turns
// autocast off, as autocast(enabled=False) does. Regions are thread-local and must be exited on the same thread,
// innermost first.
VIT_API int vit_autocast_enter(int device_type, int enabled, int dtype, int* prev_enabled, int* prev_dtype) {
  VIT_TRY
  check_out(prev_enabled);
  check_out(prev_dtype);
  const at::ScalarType fast = to_scalar_type(dtype);
  if (fast != at::kBFloat16 && fast != at::kHalf)
    throw std::invalid_argument("autocast needs a 16-bit float dtype (bfloat16 or float16)");
  if (device_type == 0) {
    if (fast != at::kBFloat16) throw std::invalid_argument("CPU autocast supports bfloat16 only");
    *prev_enabled = at::autocast::is_cpu_enabled() ? 1 : 0;
    *prev_dtype = from_scalar_type(at::autocast::get_autocast_cpu_dtype());
    at::autocast::set_cpu_enabled(enabled != 0);
    at::autocast::set_autocast_cpu_dtype(fast);
  } else if (device_type == 1) {
    *prev_enabled = at::autocast::is_enabled() ? 1 : 0;
    *prev_dtype = from_scalar_type(at::autocast::get_autocast_gpu_dtype());
    at::autocast::set_enabled(enabled != 0);
    at::autocast::set_autocast_gpu_dtype(fast);
  } else {
    throw std::invalid_argument("unknown device type " + std::to_string(device_type));
  }
  at::autocast::increment_nesting();
  VIT_CATCH
}

// Leaves a region entered by vit_autocast_enter with the values it returned, as __exit__ does: the cache of
// weights cast to the low-precision dtype is cleared when the outermost region ends.
VIT_API int vit_autocast_exit(int device_type, int prev_enabled, int prev_dtype) {
  VIT_TRY
  const at::ScalarType fast = to_scalar_type(prev_dtype);
  if (device_type != 0 && device_type != 1)
    throw std::invalid_argument("unknown device type " + std::to_string(device_type));
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (device_type == 0) {
    at::autocast::set_cpu_enabled(prev_enabled != 0);
    at::autocast::set_autocast_cpu_dtype(fast);
  } else {
    at::autocast::set_enabled(prev_enabled != 0);
    at::autocast::set_autocast_gpu_dtype(fast);
  }
  VIT_CATCH
}

// Whether CPU (0) or CUDA (1) autocast is on for this thread.
VIT_API int vit_autocast_is_enabled(int device_type, int* out) {
  VIT_TRY
  check_out(out);
  if (device_type == 0)
    *out = at::autocast::is_cpu_enabled() ? 1 : 0;
  else if (device_type == 1)
    *out = at::autocast::is_enabled() ? 1 : 0;
  else
    throw std::invalid_argument("unknown device type " + std::to_string(device_type));
  VIT_CATCH
}

// torch.inference_mode: no autograd recording and no version counters on this thread until the guard is freed.
// The guard is an opaque handle the caller owns; vit_inference_mode_exit frees it and must run on the same thread,
// innermost first. Tensors made inside cannot later take part in autograd.
VIT_API int vit_inference_mode_enter(void** guard) {
  VIT_TRY
  check_out(guard);
  *guard = new c10::InferenceMode(true);
  VIT_CATCH
}

VIT_API void vit_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

// libtorch's profiler on this thread: every op until vit_profile_end is timed and written to `path` as a Chrome
// trace (chrome://tracing, Perfetto) when the guard is freed. The guard is owned by the caller.
VIT_API int vit_profile_begin(const char* path, void** guard) {
  VIT_TRY
  check_out(guard);
  if (path == nullptr) throw std::invalid_argument("null profile path");
  *guard = new torch::autograd::profiler::RecordProfile(std::string(path));
  VIT_CATCH
}

VIT_API void vit_profile_end(void* guard) { delete static_cast<torch::autograd::profiler::RecordProfile*>(guard); }

// ---------------------------------------------------------------------------------------------------------
// Tensor lifetime, creation, metadata, data transfer
// ---------------------------------------------------------------------------------------------------------

// Frees a handle. NULL is a no-op. The only way a handle is released.
VIT_API void vit_tensor_free(T* t) {
  if (t == nullptr) return;
  delete t;
  g_live_tensors.fetch_sub(1, std::memory_order_relaxed);
}

VIT_API int vit_tensor_empty(const int64_t* dims, int n, int dtype, int dev, int dev_index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::empty(dims_of(dims, n), options(dtype, dev, dev_index)));
  VIT_CATCH
}

VIT_API int vit_tensor_full(const int64_t* dims, int n, double value, int dtype, int dev, int dev_index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::full(dims_of(dims, n), value, options(dtype, dev, dev_index)));
  VIT_CATCH
}

VIT_API int vit_tensor_arange(double start, double end, double step, int dtype, int dev, int dev_index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::arange(start, end, step, options(dtype, dev, dev_index)));
  VIT_CATCH
}

// kind: 0 = standard normal, 1 = uniform [0,1). Uses the global (seeded) generator.
VIT_API int vit_tensor_random(const int64_t* dims, int n, int kind, int dtype, int dev, int dev_index, T** out) {
  VIT_TRY
  check_out(out);
  auto opts = options(dtype, dev, dev_index);
  if (kind == 0)
    *out = wrap(at::randn(dims_of(dims, n), vit::thread_generator(), opts));
  else if (kind == 1)
    *out = wrap(at::rand(dims_of(dims, n), vit::thread_generator(), opts));
  else
    throw std::invalid_argument("unknown random kind");
  VIT_CATCH
}

// Random permutation of 0..n-1 (int64), from the global generator.
VIT_API int vit_tensor_randperm(int64_t n, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::randperm(n, vit::thread_generator(), at::TensorOptions().dtype(at::kLong)));
  VIT_CATCH
}

// Copies nbytes from data into a new CPU tensor of the given shape and dtype; nbytes must match exactly.
VIT_API int vit_tensor_from_data(const void* data, int64_t nbytes, const int64_t* dims, int n, int dtype, T** out) {
  VIT_TRY
  check_out(out);
  auto st = to_scalar_type(dtype);
  auto shape = dims_of(dims, n);
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) throw std::invalid_argument("negative dimension");
    numel *= d;
  }
  const int64_t need = numel * static_cast<int64_t>(c10::elementSize(st));
  if (need != nbytes)
    throw std::invalid_argument("data has " + std::to_string(nbytes) + " bytes but the shape needs " +
                                std::to_string(need));
  T t = at::empty(shape, at::TensorOptions().dtype(st));
  if (need > 0) {
    if (data == nullptr) throw std::invalid_argument("null data pointer");
    std::memcpy(t.data_ptr(), data, static_cast<size_t>(need));
  }
  *out = wrap(std::move(t));
  VIT_CATCH
}

// Copies a tensor's elements (in row-major order) into dst; nbytes must equal numel * element size.
VIT_API int vit_tensor_copy_to(const T* t, void* dst, int64_t nbytes) {
  VIT_TRY
  auto c = ref(t).detach().to(at::kCPU).contiguous();
  const int64_t need = c.numel() * static_cast<int64_t>(c.element_size());
  if (need != nbytes)
    throw std::invalid_argument("destination has " + std::to_string(nbytes) + " bytes but the tensor has " +
                                std::to_string(need));
  if (need > 0) {
    if (dst == nullptr) throw std::invalid_argument("null destination");
    std::memcpy(dst, c.data_ptr(), static_cast<size_t>(need));
  }
  VIT_CATCH
}

// The address of a contiguous CPU tensor's first element, for writing batches straight into tensor memory.
// The pointer is valid while the tensor lives and is not resized.
VIT_API int vit_tensor_data_ptr(T* t, void** out) {
  VIT_TRY
  check_out(out);
  auto& x = mref(t);
  if (!x.device().is_cpu()) throw std::invalid_argument("data_ptr needs a CPU tensor");
  if (!x.is_contiguous()) throw std::invalid_argument("data_ptr needs a contiguous tensor");
  *out = x.data_ptr();
  VIT_CATCH
}

VIT_API int vit_tensor_ndim(const T* t, int* out) {
  VIT_TRY
  check_out(out);
  *out = static_cast<int>(ref(t).dim());
  VIT_CATCH
}

// The bytes of t's elements (numel x element size), for the GC's memory-pressure accounting.
VIT_API int vit_tensor_nbytes(const T* t, int64_t* out) {
  VIT_TRY
  check_out(out);
  *out = static_cast<int64_t>(ref(t).nbytes());
  VIT_CATCH
}

// Writes up to cap sizes into dims.
VIT_API int vit_tensor_shape(const T* t, int64_t* dims, int cap) {
  VIT_TRY
  auto s = ref(t).sizes();
  if (cap < static_cast<int>(s.size())) throw std::invalid_argument("shape buffer too small");
  if (!s.empty() && dims == nullptr) throw std::invalid_argument("null shape buffer");
  for (size_t i = 0; i < s.size(); ++i) dims[i] = s[i];
  VIT_CATCH
}

VIT_API int vit_tensor_dtype(const T* t, int* out) {
  VIT_TRY
  check_out(out);
  *out = from_scalar_type(ref(t).scalar_type());
  VIT_CATCH
}

// Device type (0 CPU, 1 CUDA) and index.
VIT_API int vit_tensor_device(const T* t, int* type, int* index) {
  VIT_TRY
  check_out(type);
  check_out(index);
  auto d = ref(t).device();
  *type = d.is_cuda() ? 1 : (d.is_cpu() ? 0 : -1);
  *index = d.has_index() ? d.index() : 0;
  VIT_CATCH
}

VIT_API int vit_tensor_item(const T* t, double* out) {
  VIT_TRY
  check_out(out);
  *out = ref(t).item<double>();
  VIT_CATCH
}

VIT_API int vit_tensor_to(const T* t, int dtype, int dev, int dev_index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(t).to(to_device(dev, dev_index), to_scalar_type(dtype)));
  VIT_CATCH
}

VIT_API int vit_tensor_clone(const T* t, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(t).clone());
  VIT_CATCH
}

VIT_API int vit_tensor_detach(const T* t, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(t).detach());
  VIT_CATCH
}

VIT_API int vit_tensor_contiguous(const T* t, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(t).contiguous());
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Autograd
// ---------------------------------------------------------------------------------------------------------

VIT_API int vit_tensor_set_requires_grad(T* t, int flag) {
  VIT_TRY
  mref(t).set_requires_grad(flag != 0);
  VIT_CATCH
}

VIT_API int vit_tensor_requires_grad(const T* t, int* out) {
  VIT_TRY
  check_out(out);
  *out = ref(t).requires_grad() ? 1 : 0;
  VIT_CATCH
}

// Backpropagates from t. A non-scalar t needs grad_output of the same shape; pass NULL for a scalar.
VIT_API int vit_tensor_backward(const T* t, const T* grad_output) {
  VIT_TRY
  if (grad_output == nullptr)
    ref(t).backward();
  else
    ref(t).backward(ref(grad_output));
  VIT_CATCH
}

// The accumulated gradient of t as a new handle, or *out = NULL when t has none.
VIT_API int vit_tensor_grad(const T* t, T** out) {
  VIT_TRY
  check_out(out);
  const auto& g = ref(t).grad();
  *out = g.defined() ? wrap(g) : nullptr;
  VIT_CATCH
}

// Drops t's gradient (like optimizer.zero_grad(set_to_none=True)).
VIT_API int vit_tensor_grad_reset(T* t) {
  VIT_TRY
  mref(t).mutable_grad().reset();
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Elementwise math
// ---------------------------------------------------------------------------------------------------------

#define VIT_BINARY(name, expr)                                      \
  VIT_API int vit_tensor_##name(const T* a, const T* b, T** out) { \
    VIT_TRY                                                         \
    check_out(out);                                                 \
    const auto& x = ref(a);                                         \
    const auto& y = ref(b);                                         \
    *out = wrap(expr);                                              \
    VIT_CATCH                                                       \
  }

VIT_BINARY(add, x + y)
VIT_BINARY(sub, x - y)
VIT_BINARY(mul, x * y)
VIT_BINARY(div, x / y)
VIT_BINARY(matmul, at::matmul(x, y))
VIT_BINARY(bmm, at::bmm(x, y))
VIT_BINARY(eq, at::eq(x, y))
VIT_BINARY(maximum, at::maximum(x, y))
VIT_BINARY(lt, at::lt(x, y))

#define VIT_UNARY(name, expr)                         \
  VIT_API int vit_tensor_##name(const T* a, T** out) { \
    VIT_TRY                                           \
    check_out(out);                                   \
    const auto& x = ref(a);                           \
    *out = wrap(expr);                                \
    VIT_CATCH                                         \
  }

VIT_UNARY(neg, -x)
VIT_UNARY(exp, at::exp(x))
VIT_UNARY(log, at::log(x))
VIT_UNARY(sqrt, at::sqrt(x))
VIT_UNARY(tanh, at::tanh(x))
VIT_UNARY(abs, at::abs(x))
VIT_UNARY(erf, at::erf(x))
VIT_UNARY(floor, at::floor(x))
VIT_UNARY(gelu, at::gelu(x, "none"))  // exact: x * Phi(x), as in the ViT paper and timm's default
VIT_UNARY(relu, at::relu(x))
VIT_UNARY(isfinite, at::isfinite(x))
VIT_UNARY(sum_all, x.sum())
VIT_UNARY(mean_all, x.mean())
VIT_UNARY(all, x.all())

#define VIT_SCALAR(name, expr)                                    \
  VIT_API int vit_tensor_##name(const T* a, double s, T** out) { \
    VIT_TRY                                                       \
    check_out(out);                                               \
    const auto& x = ref(a);                                       \
    *out = wrap(expr);                                            \
    VIT_CATCH                                                     \
  }

VIT_SCALAR(add_scalar, x + s)
VIT_SCALAR(mul_scalar, x * s)
VIT_SCALAR(div_scalar, x / s)
VIT_SCALAR(pow_scalar, at::pow(x, s))
VIT_SCALAR(lt_scalar, at::lt(x, s))
VIT_SCALAR(gt_scalar, at::gt(x, s))
VIT_SCALAR(eq_scalar, at::eq(x, s))
VIT_SCALAR(rsub_scalar, s - x)

VIT_API int vit_tensor_clamp(const T* a, double lo, double hi, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::clamp(ref(a), lo, hi));
  VIT_CATCH
}

// where(cond, a, b)
VIT_API int vit_tensor_where(const T* cond, const T* a, const T* b, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::where(ref(cond), ref(a), ref(b)));
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------------------

VIT_API int vit_tensor_sum(const T* a, const int64_t* dims, int n, int keepdim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).sum(dims_of(dims, n), keepdim != 0));
  VIT_CATCH
}

VIT_API int vit_tensor_mean(const T* a, const int64_t* dims, int n, int keepdim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).mean(dims_of(dims, n), keepdim != 0));
  VIT_CATCH
}

VIT_API int vit_tensor_max(const T* a, int64_t dim, int keepdim, T** values, T** indices) {
  VIT_TRY
  check_out(values);
  check_out(indices);
  auto r = ref(a).max(dim, keepdim != 0);
  T* both[2];
  wrap_all({std::get<0>(r), std::get<1>(r)}, both);
  *values = both[0];
  *indices = both[1];
  VIT_CATCH
}

VIT_API int vit_tensor_argmax(const T* a, int64_t dim, int keepdim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).argmax(dim, keepdim != 0));
  VIT_CATCH
}

VIT_API int vit_tensor_topk(const T* a, int64_t k, int64_t dim, int largest, int sorted, T** values, T** indices) {
  VIT_TRY
  check_out(values);
  check_out(indices);
  auto r = ref(a).topk(k, dim, largest != 0, sorted != 0);
  T* both[2];
  wrap_all({std::get<0>(r), std::get<1>(r)}, both);
  *values = both[0];
  *indices = both[1];
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Shape and indexing
// ---------------------------------------------------------------------------------------------------------

VIT_API int vit_tensor_reshape(const T* a, const int64_t* dims, int n, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).reshape(dims_of(dims, n)));
  VIT_CATCH
}

VIT_API int vit_tensor_view(const T* a, const int64_t* dims, int n, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).view(dims_of(dims, n)));
  VIT_CATCH
}

VIT_API int vit_tensor_permute(const T* a, const int64_t* dims, int n, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).permute(dims_of(dims, n)));
  VIT_CATCH
}

VIT_API int vit_tensor_transpose(const T* a, int64_t d0, int64_t d1, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).transpose(d0, d1));
  VIT_CATCH
}

VIT_API int vit_tensor_expand(const T* a, const int64_t* dims, int n, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).expand(dims_of(dims, n)));
  VIT_CATCH
}

VIT_API int vit_tensor_flatten(const T* a, int64_t start, int64_t end, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).flatten(start, end));
  VIT_CATCH
}

VIT_API int vit_tensor_unsqueeze(const T* a, int64_t dim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).unsqueeze(dim));
  VIT_CATCH
}

VIT_API int vit_tensor_squeeze(const T* a, int64_t dim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).squeeze(dim));
  VIT_CATCH
}

VIT_API int vit_tensor_slice(const T* a, int64_t dim, int64_t start, int64_t end, int64_t step, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).slice(dim, start, end, step));
  VIT_CATCH
}

VIT_API int vit_tensor_select(const T* a, int64_t dim, int64_t index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).select(dim, index));
  VIT_CATCH
}

VIT_API int vit_tensor_index_select(const T* a, int64_t dim, const T* index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).index_select(dim, ref(index)));
  VIT_CATCH
}

VIT_API int vit_tensor_gather(const T* a, int64_t dim, const T* index, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(ref(a).gather(dim, ref(index)));
  VIT_CATCH
}

VIT_API int vit_tensor_cat(T* const* parts, int n, int64_t dim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::cat(tensors_of(parts, n, "cat"), dim));
  VIT_CATCH
}

VIT_API int vit_tensor_stack(T* const* parts, int n, int64_t dim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::stack(tensors_of(parts, n, "stack"), dim));
  VIT_CATCH
}

// Splits a along dim into `count` equal chunks; outs must have room for count handles.
VIT_API int vit_tensor_chunk(const T* a, int64_t count, int64_t dim, T** outs) {
  VIT_TRY
  check_out(outs);
  auto parts = ref(a).chunk(count, dim);
  if (static_cast<int64_t>(parts.size()) != count)
    throw std::invalid_argument("dimension " + std::to_string(dim) + " of size " +
                                std::to_string(ref(a).size(dim)) + " does not split into " +
                                std::to_string(count) + " chunks");
  wrap_all(std::move(parts), outs);
  VIT_CATCH
}

// One-hot encoding of int64 labels into a float tensor (N, classes).
VIT_API int vit_tensor_one_hot(const T* labels, int64_t classes, int dtype, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::one_hot(ref(labels), classes).to(to_scalar_type(dtype)));
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// Neural-network ops
// ---------------------------------------------------------------------------------------------------------

// y = x W^T + b; bias may be NULL.
// y = x wᵀ + b (b may be NULL), then exact GELU when gelu != 0 (vit_fused.h: fused on oneDNN when scoring in
// bfloat16).
VIT_API int vit_nn_linear(const T* x, const T* w, const T* b, int gelu, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(vit::linear(ref(x), ref(w), b != nullptr ? ref(b) : at::Tensor(), gelu != 0));
  VIT_CATCH
}

VIT_API int vit_nn_conv2d(const T* x, const T* w, const T* b, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                          int64_t pad_w, T** out) {
  VIT_TRY
  check_out(out);
  c10::optional<T> bias;
  if (b != nullptr) bias = ref(b);
  *out = wrap(at::conv2d(ref(x), ref(w), bias, {stride_h, stride_w}, {pad_h, pad_w}));
  VIT_CATCH
}

// Layer norm over the trailing `n` dims given in dims; weight/bias may be NULL.
VIT_API int vit_nn_layer_norm(const T* x, const int64_t* dims, int n, const T* w, const T* b, double eps, T** out) {
  VIT_TRY
  check_out(out);
  c10::optional<T> weight, bias;
  if (w != nullptr) weight = ref(w);
  if (b != nullptr) bias = ref(b);
  *out = wrap(at::layer_norm(ref(x), dims_of(dims, n), weight, bias, eps));
  VIT_CATCH
}

// Multi-head self-attention of a fused (B, N, 3D) projection (vit_fused.h), in qkv's dtype (or autocast's).
// probs may be NULL; otherwise *probs receives a new handle to the probabilities (B, H, N, N) before dropout,
// detached. Both results are created before either handle is, so a failure leaks neither.
VIT_API int vit_nn_self_attention(const T* qkv, int64_t heads, double scale, double dropout, int train, T** out,
                                  T** probs) {
  VIT_TRY
  check_out(out);
  at::Tensor p;
  auto o = vit::self_attention(ref(qkv), heads, scale, dropout, train != 0, probs != nullptr ? &p : nullptr);
  if (probs == nullptr) {
    *out = wrap(std::move(o));
  } else {
    std::unique_ptr<T> first(new T(std::move(o)));
    *probs = wrap(std::move(p));
    g_live_tensors.fetch_add(1, std::memory_order_relaxed);
    *out = first.release();
  }
  VIT_CATCH
}

VIT_API int vit_nn_softmax(const T* x, int64_t dim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::softmax(ref(x), dim));
  VIT_CATCH
}

VIT_API int vit_nn_log_softmax(const T* x, int64_t dim, T** out) {
  VIT_TRY
  check_out(out);
  *out = wrap(at::log_softmax(ref(x), dim));
  VIT_CATCH
}

VIT_API int vit_nn_dropout(const T* x, double p, int train, T** out) {
  VIT_TRY
  check_out(out);
  check_unit_interval(p, "dropout probability");
  const auto& input = ref(x);
  if (train == 0 || p == 0) {
    *out = wrap(input);  // as at::dropout: the input itself when not training
  } else if (p == 1) {
    *out = wrap(input * 0);
  } else {
    // at::dropout's own CPU arithmetic (a Bernoulli(1 - p) mask scaled by 1 / (1 - p)), from this thread's generator.
    auto noise = at::empty_like(input, at::MemoryFormat::Preserve).bernoulli_(1 - p, vit::thread_generator());
    noise.div_(1 - p);
    *out = wrap(input * noise);
  }
  VIT_CATCH
}

// Resizes the spatial dims of x (N, C, H, W) to (out_h, out_w), as torch.nn.functional.interpolate with
// align_corners=False and no scale factors: mode 1 bilinear, 2 bicubic. antialias != 0 low-pass filters when
// shrinking (PIL-like; libtorch's _upsample_*_aa kernels). Differentiable.
VIT_API int vit_nn_interpolate(const T* x, int mode, int64_t out_h, int64_t out_w, int antialias, T** out) {
  VIT_TRY
  check_out(out);
  const auto& input = ref(x);
  if (input.dim() != 4) throw std::invalid_argument("interpolate expects a 4-d tensor (N, C, H, W)");
  if (out_h < 1 || out_w < 1) throw std::invalid_argument("interpolate: output size must be positive");
  const std::vector<int64_t> size{out_h, out_w};
  switch (mode) {
    case 1:
      *out = wrap(antialias ? at::_upsample_bilinear2d_aa(input, size, false, c10::nullopt, c10::nullopt)
                            : at::upsample_bilinear2d(input, size, false, c10::nullopt, c10::nullopt));
      break;
    case 2:
      *out = wrap(antialias ? at::_upsample_bicubic2d_aa(input, size, false, c10::nullopt, c10::nullopt)
                            : at::upsample_bicubic2d(input, size, false, c10::nullopt, c10::nullopt));
      break;
    default: throw std::invalid_argument("interpolate: unknown mode (1 bilinear, 2 bicubic)");
  }
  VIT_CATCH
}

// Cross-entropy of logits (N, C). target is either int64 class indices (N) or float class probabilities
// (N, C) (soft targets, e.g. mixup). reduction: 0 none, 1 mean, 2 sum.
VIT_API int vit_nn_cross_entropy(const T* logits, const T* target, double label_smoothing, int reduction, T** out) {
  VIT_TRY
  check_out(out);
  check_unit_interval(label_smoothing, "label smoothing");
  if (reduction < 0 || reduction > 2) throw std::invalid_argument("unknown reduction");
  *out = wrap(at::cross_entropy_loss(ref(logits), ref(target), c10::nullopt, reduction, -100, label_smoothing));
  VIT_CATCH
}

// A tensor of the given shape whose elements are 1 with probability p and 0 otherwise.
VIT_API int vit_tensor_bernoulli(const int64_t* dims, int n, double p, int dtype, int dev, int dev_index, T** out) {
  VIT_TRY
  check_out(out);
  check_unit_interval(p, "bernoulli probability");
  *out = wrap(at::empty(dims_of(dims, n), options(dtype, dev, dev_index)).bernoulli_(p, vit::thread_generator()));
  VIT_CATCH
}

// ---------------------------------------------------------------------------------------------------------
// In-place updates (no autograd history), initialisation, optimisation
// ---------------------------------------------------------------------------------------------------------

VIT_API int vit_tensor_copy_(T* dst, const T* src) {
  VIT_TRY
  at::NoGradGuard guard;
  mref(dst).copy_(ref(src));
  VIT_CATCH
}

// Makes dst hold src's values, type and device while keeping dst's handle and requires_grad, as PyTorch's
// `param.data = src` (used by Module.To to convert parameters in place). dst then shares src's memory. dst's
// gradient is dropped: it would no longer match.
VIT_API int vit_tensor_set_data(T* dst, const T* src) {
  VIT_TRY
  at::NoGradGuard guard;
  auto& d = mref(dst);
  d.mutable_grad().reset();
  d.set_data(ref(src).detach());
  VIT_CATCH
}

VIT_API int vit_tensor_fill_(T* t, double value) {
  VIT_TRY
  at::NoGradGuard guard;
  mref(t).fill_(value);
  VIT_CATCH
}

// t += alpha * other
VIT_API int vit_tensor_add_(T* t, const T* other, double alpha) {
  VIT_TRY
  at::NoGradGuard guard;
  mref(t).add_(ref(other), alpha);
  VIT_CATCH
}

VIT_API int vit_tensor_mul_scalar_(T* t, double s) {
  VIT_TRY
  at::NoGradGuard guard;
  mref(t).mul_(s);
  VIT_CATCH
}

VIT_API int vit_tensor_normal_(T* t, double mean, double std) {
  VIT_TRY
  at::NoGradGuard guard;
  mref(t).normal_(mean, std, vit::thread_generator());
  VIT_CATCH
}

VIT_API int vit_tensor_uniform_(T* t, double lo, double hi) {
  VIT_TRY
  at::NoGradGuard guard;
  mref(t).uniform_(lo, hi, vit::thread_generator());
  VIT_CATCH
}

// Normal(mean, std) truncated to [lo, hi] (absolute bounds, as timm's trunc_normal_), by the inverse-CDF
// method: draw u uniformly between the CDF values of the bounds and map it back through erfinv.
VIT_API int vit_tensor_trunc_normal_(T* t, double mean, double std, double lo, double hi) {
  VIT_TRY
  at::NoGradGuard guard;
  if (!(std > 0)) throw std::invalid_argument("trunc_normal std must be positive");
  if (!(lo < hi)) throw std::invalid_argument("trunc_normal needs lo < hi");
  auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  const double l = cdf((lo - mean) / std), u = cdf((hi - mean) / std);
  auto& x = mref(t);
  x.uniform_(2 * l - 1, 2 * u - 1, vit::thread_generator());
  x.erfinv_();
  x.mul_(std * std::sqrt(2.0));
  x.add_(mean);
  x.clamp_(lo, hi);
  VIT_CATCH
}

// One AdamW step (Loshchilov & Hutter; same update as torch.optim.AdamW) over n parameters. Parameters
// without a gradient are skipped. exp_avg and exp_avg_sq are the per-parameter state tensors (updated in
// place); weight_decay[i] is the decoupled decay of parameter i; lr_scale[i] multiplies lr for parameter i
// (layer-wise decay; NULL = 1 for all); step is the 1-based step count.
// All or nothing: every array, handle, shape, dtype and device is checked, and the one scratch buffer the update
// needs is allocated, before any parameter changes; after that only in-place arithmetic on checked tensors runs,
// so a refused call leaves every parameter and moment as it was.
VIT_API int vit_optim_adamw_step(T* const* params, T* const* exp_avg, T* const* exp_avg_sq,
                                 const double* weight_decay, const double* lr_scale, int n, double base_lr,
                                 double beta1, double beta2, double eps, int64_t step) {
  VIT_TRY
  at::NoGradGuard guard;
  if (n < 0) throw std::invalid_argument("negative parameter count");
  if (step < 1) throw std::invalid_argument("AdamW step must be >= 1");
  if (n > 0 && (params == nullptr || exp_avg == nullptr || exp_avg_sq == nullptr || weight_decay == nullptr))
    throw std::invalid_argument("AdamW: null parameter, moment or weight-decay array");
  for (int i = 0; i < n; ++i) {
    const auto where = " of parameter " + std::to_string(i);
    if (params[i] == nullptr || !params[i]->defined()) throw std::invalid_argument("AdamW: null or undefined handle" + where);
    if (exp_avg[i] == nullptr || !exp_avg[i]->defined() || exp_avg_sq[i] == nullptr || !exp_avg_sq[i]->defined())
      throw std::invalid_argument("AdamW: null or undefined moment" + where);
    const auto& p = *params[i];
    const auto& g = p.grad();
    if (!g.defined()) continue;
    for (const T* t : std::initializer_list<const T*>{&g, exp_avg[i], exp_avg_sq[i]})
      if (!t->sizes().equals(p.sizes()) || t->scalar_type() != p.scalar_type() || t->device() != p.device())
        throw std::invalid_argument("AdamW: the gradient or a moment" + where + " differs from it in shape, dtype or device");
    const double scale = lr_scale == nullptr ? 1.0 : lr_scale[i];
    if (!std::isfinite(scale) || !std::isfinite(weight_decay[i]))
      throw std::invalid_argument("AdamW: non-finite learning-rate scale or weight decay" + where);
  }
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const double bc2_sqrt = std::sqrt(bc2);
  // The denominators' memory, allocated up front: one buffer per dtype and device in use, of the largest such
  // parameter's size.
  std::vector<T> scratch;
  auto same_kind = [](const T& a, const T& b) { return a.scalar_type() == b.scalar_type() && a.device() == b.device(); };
  for (int i = 0; i < n; ++i) {
    const auto& p = *params[i];
    if (!p.grad().defined()) continue;
    auto it = std::find_if(scratch.begin(), scratch.end(), [&](const T& s) { return same_kind(s, p); });
    if (it == scratch.end())
      scratch.push_back(at::empty({p.numel()}, p.options()));
    else if (it->numel() < p.numel())
      *it = at::empty({p.numel()}, p.options());
  }
  for (int i = 0; i < n; ++i) {
    auto& p = *params[i];
    const auto& g = p.grad();
    if (!g.defined()) continue;
    const double lr = lr_scale == nullptr ? base_lr : base_lr * lr_scale[i];
    const double step_size = lr / bc1;
    auto& m = *exp_avg[i];
    auto& v = *exp_avg_sq[i];
    const auto& buffer = *std::find_if(scratch.begin(), scratch.end(), [&](const T& s) { return same_kind(s, p); });
    T denom = buffer.narrow(0, 0, p.numel()).view(p.sizes());
    p.mul_(1.0 - lr * weight_decay[i]);
    m.mul_(beta1).add_(g, 1.0 - beta1);
    v.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
    at::sqrt_out(denom, v);
    denom.div_(bc2_sqrt).add_(eps);
    p.addcdiv_(m, denom, -step_size);
  }
  VIT_CATCH
}

// Total L2 norm of the gradients of n parameters (as torch.nn.utils.clip_grad_norm_); when max_norm > 0
// and the norm exceeds it, scales all gradients by max_norm / (norm + 1e-6).
VIT_API int vit_optim_clip_grad_norm(T* const* params, int n, double max_norm, double* total_norm) {
  VIT_TRY
  at::NoGradGuard guard;
  check_out(total_norm);
  std::vector<T> norms;
  for (int i = 0; i < n; ++i) {
    const auto& g = ref(params[i]).grad();
    if (g.defined()) norms.push_back(g.norm(2).to(at::kDouble));
  }
  double total = 0;
  if (!norms.empty()) total = at::stack(norms).norm(2).item<double>();
  *total_norm = total;
  if (max_norm > 0 && std::isfinite(total)) {
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
      for (int i = 0; i < n; ++i) {
        auto g = ref(params[i]).grad();
        if (g.defined()) g.mul_(coef);
      }
  }
  VIT_CATCH
}
