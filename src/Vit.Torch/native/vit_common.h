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
inline thread_local std::string g_last_error;

inline void set_error(const char* text) { g_last_error = text ? text : "(no message)"; }

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
