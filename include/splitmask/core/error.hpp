// The exceptions the library throws for errors a user can cause (shapes, CUDA, files).
// Internal invariants are asserts; what a caller can get wrong is one of these, with a message
// that says what was expected and what was found.
#pragma once

#include <stdexcept>
#include <string>

namespace splitmask {

/// Base of every exception thrown by splitmask.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A run-time shape mismatch (the batch extent) or a misuse of views (overlap, out of range).
class shape_error : public error {
 public:
  using error::error;
};

/// A failed CUDA runtime or cuBLAS call; the message names the call, the file and the line.
class cuda_error : public error {
 public:
  using error::error;
};

/// A file that cannot be read or written, or whose content is not what was expected (a dataset,
/// an image, a checkpoint); the message names the file and says what was expected and found.
class file_error : public error {
 public:
  using error::error;
};

}  // namespace splitmask
