#pragma once
// One exception type for everything the user can get wrong: a missing or
// malformed file, a bad option, an impossible shape. Its message is one line
// that names the thing and the problem; the chapter executables print it and
// exit with status 1.
#include <stdexcept>
#include <string>

namespace nn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace nn
