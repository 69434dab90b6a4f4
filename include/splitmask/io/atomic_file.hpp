// atomic_file: writes a file so that a reader, or the file system after a crash, sees either the
// old content or the complete new one, never a mix (checkpoints survive a kill mid-write). POSIX.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "splitmask/core/error.hpp"

namespace splitmask {

namespace detail {

/// "<what> '<path>': <strerror(errno)>", read before anything can change errno.
inline file_error system_file_error(const std::string& what, const std::string& path) {
  const int code = errno;
  return file_error("splitmask::atomic_file: " + what + " '" + path + "': " + std::strerror(code));
}

/// The directory holding `path` ("." for a bare name, "/" for a file in the root).
inline std::string parent_directory(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

/// fsync of a directory, so that a rename in it is durable. File systems that cannot sync a
/// directory (EINVAL, ENOTSUP) are accepted: there the rename is as durable as they make it.
inline void sync_directory(const std::string& directory) {
  int fd;
  do fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw system_file_error("cannot open the directory", directory);
  if (::fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) {
    file_error e = system_file_error("cannot fsync the directory", directory);
    ::close(fd);
    throw e;
  }
  ::close(fd);
}

}  // namespace detail

/// A file written under a temporary name in its final directory (`<path>.tmp-<pid>-<n>`) and
/// renamed over `path` by commit(). Until commit() returns, `path` keeps its old content (or stays
/// absent); destroying an uncommitted atomic_file removes the temporary. A process killed
/// mid-write leaves `path` intact but may leave its temporary behind.
/// Every failed system call throws file_error naming the path and strerror(errno).
class atomic_file {
 public:
  /// Creates the temporary (mode 0666 less the umask). Requires: `path`'s directory exists and is
  /// writable, else file_error.
  explicit atomic_file(std::string path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0;; ++attempt) {
      temporary_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
      do fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      while (fd_ < 0 && errno == EINTR);
      if (fd_ >= 0) return;
      // A temporary left by a killed process of the same pid: try the next name.
      if (errno != EEXIST || attempt == 100)
        throw detail::system_file_error("cannot create the temporary file", temporary_);
    }
  }

  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;

  /// Removes the temporary unless commit() succeeded.
  ~atomic_file() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temporary_.c_str());
  }

  /// Appends `bytes` bytes from `data` to the temporary. Requires: not committed.
  void write(const void* data, std::size_t bytes) {
    if (fd_ < 0) throw file_error("splitmask::atomic_file: write to '" + path_ + "' after commit");
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const std::size_t chunk = bytes < (std::size_t(1) << 30) ? bytes : (std::size_t(1) << 30);
      const ssize_t n = ::write(fd_, p, chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw detail::system_file_error("cannot write the temporary file", temporary_);
      }
      p += n;
      bytes -= static_cast<std::size_t>(n);
    }
  }

  /// Makes the content durable and visible at `path`: fsync(file), close, rename over `path`,
  /// fsync(directory). Ensures: on return `path` holds exactly what was written; on a throw
  /// before the rename, `path` is unchanged and the temporary is removed.
  void commit() {
    if (fd_ < 0) throw file_error("splitmask::atomic_file: '" + path_ + "' committed twice");
    if (::fsync(fd_) != 0)
      throw detail::system_file_error("cannot fsync the temporary", temporary_);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw detail::system_file_error("cannot close the temporary", temporary_);
    if (::rename(temporary_.c_str(), path_.c_str()) != 0)
      throw detail::system_file_error("cannot rename '" + temporary_ + "' to", path_);
    committed_ = true;
    detail::sync_directory(detail::parent_directory(path_));
  }

  /// The final path, and the temporary's name (for tests and messages).
  const std::string& path() const noexcept { return path_; }
  const std::string& temporary_path() const noexcept { return temporary_; }

 private:
  std::string path_;
  std::string temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Replaces `path`'s content with `bytes` atomically (see atomic_file).
inline void write_file_atomically(const std::string& path, const std::string& bytes) {
  atomic_file file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace splitmask
