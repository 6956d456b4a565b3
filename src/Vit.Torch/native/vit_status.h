// What the C ABI libraries built here (vit_imaging, vit_gloo) share: the export attribute, the thread-local
// error text and the VIT_TRY/VIT_CATCH pair that turns every C++ exception into status 1. No libtorch, no c10:
// each library links only what its own job needs.
//
// Rules (shared/DESIGN.md, "Native boundary rules"): every export returns 0 (ok) or 1 (error) and never lets a
// C++ exception escape; the text of the last failed call on this thread is copied into a caller-owned buffer
// by the library's *_last_error export (see vit::copy_last_error).
#pragma once

#include <cstring>
#include <stdexcept>

#define VIT_API extern "C" __attribute__((visibility("default")))

namespace vit {

// The text of the last failed call on this thread. Each library is built with -fvisibility=hidden, so each has
// its own copy (an error of vit_gloo is never read back through vit_imaging's export). A fixed buffer, not a
// std::string: set_error runs inside catch blocks and must not allocate (a bad_alloc there would escape the
// extern "C" export and end the process).
inline constexpr int kErrorCapacity = 4096;
inline thread_local char g_last_error[kErrorCapacity] = {0};
inline thread_local int g_last_error_length = 0;

// Copies text (truncated to the buffer, on a UTF-8 character boundary) as this thread's last error; never throws.
inline void set_error(const char* text) noexcept {
  if (text == nullptr) text = "(no message)";
  int n = 0;
  while (text[n] != '\0' && n < kErrorCapacity - 1) ++n;
  if (text[n] != '\0')
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;  // not inside a multi-byte character
  for (int i = 0; i < n; ++i) g_last_error[i] = text[i];
  g_last_error[n] = '\0';
  g_last_error_length = n;
}

// The body of each library's *_last_error export: copies this thread's last error text (NUL-terminated,
// truncated to cap - 1 bytes) into buf when buf is not NULL, and returns its full length in bytes, so a caller
// can ask with (NULL, 0) first and then pass a buffer of length + 1.
inline int copy_last_error(char* buf, int cap) noexcept {
  const int n = g_last_error_length;
  if (buf != nullptr && cap > 0) {
    const int m = n < cap - 1 ? n : cap - 1;
    std::memcpy(buf, g_last_error, static_cast<size_t>(m));
    buf[m] = '\0';
  }
  return n;
}

inline void check_out(const void* out) {
  if (out == nullptr) throw std::invalid_argument("null out-parameter");
}

}  // namespace vit

#define VIT_TRY try {
#define VIT_CATCH                                   \
  }                                                 \
  catch (const std::exception& e) {                 \
    vit::set_error(e.what());                       \
    return 1;                                       \
  }                                                 \
  catch (...) {                                     \
    vit::set_error("unknown C++ exception");        \
    return 1;                                       \
  }                                                 \
  return 0;
