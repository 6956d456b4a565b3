// What every translation unit of vit_native shares: the export attribute, the thread-local error text and
// the VIT_TRY/VIT_CATCH pair that turns every C++ exception into status 1 (see vit_native.cpp's rules).
#pragma once

#include <c10/util/Exception.h>

#include <stdexcept>
#include <string>

#define VIT_API extern "C" __attribute__((visibility("default")))

namespace vit {

// The text of the last failed call on this thread, read by vit_last_error. `inline` makes it one variable
// for the whole library, so an error raised in vit_imaging.cpp is read back through vit_native.cpp's export.
// A fixed buffer, not a std::string: set_error runs inside catch blocks and must not allocate (a bad_alloc
// there would escape the extern "C" export and end the process).
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

inline void check_out(const void* out) {
  if (out == nullptr) throw std::invalid_argument("null out-parameter");
}

}  // namespace vit

#define VIT_TRY try {
#define VIT_CATCH                                         \
  }                                                       \
  catch (const c10::Error& e) {                           \
    vit::set_error(e.what_without_backtrace());           \
    return 1;                                             \
  }                                                       \
  catch (const std::exception& e) {                       \
    vit::set_error(e.what());                             \
    return 1;                                             \
  }                                                       \
  catch (...) {                                           \
    vit::set_error("unknown C++ exception in vit_native");\
    return 1;                                             \
  }                                                       \
  return 0;
