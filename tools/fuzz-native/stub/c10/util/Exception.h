// Stand-in for libtorch's <c10/util/Exception.h>, used only by the fuzz build (tools/fuzz-native).
//
// vit_common.h includes the real header because VIT_CATCH catches c10::Error. vit_imaging.cpp never throws
// one, so the fuzz harness compiles it against this small class instead and does not need to link libtorch.
// The stub directory is put first on the include path; nothing else of c10 is provided.
#pragma once

#include <exception>
#include <string>

namespace c10 {

class Error : public std::exception {
 public:
  explicit Error(std::string msg) : msg_(std::move(msg)) {}
  const char* what() const noexcept override { return msg_.c_str(); }
  const char* what_without_backtrace() const noexcept { return msg_.c_str(); }

 private:
  std::string msg_;
};

}  // namespace c10
