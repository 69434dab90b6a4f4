// progress_bar: one line redrawn in place on a terminal (bar, step, loss terms, images/s, ETA),
// or a plain log line every few steps when the output is a file or a pipe.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace splitmask::examples {

/// "1h02m", "3m07s", "12s".
inline std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, s / 60 % 60);
  else if (s >= 60)
    std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%llds", s);
  return text;
}

class progress_bar {
 public:
  /// Steps first_step + 1 ... total; `log_every` steps between lines when not on a terminal.
  progress_bar(std::uint64_t first_step, std::uint64_t total, std::uint64_t log_every,
               std::FILE* out = stderr)
      : first_(first_step),
        total_(total),
        log_every_(log_every == 0 ? 1 : log_every),
        out_(out),
        terminal_(isatty(fileno(out)) != 0),
        start_(clock::now()) {}

  /// After step `step` (1-based): `terms` is the loss text, `images_per_s` the recent speed.
  void update(std::uint64_t step, const std::string& terms, double images_per_s) {
    const double elapsed = seconds_since(start_);
    const double per_step = elapsed / double(step - first_);
    const std::string eta = format_duration(per_step * double(total_ - step));
    const bool last = step == total_;
    if (terminal_) {
      if (!last && seconds_since(last_draw_) < 0.1) return;  // at most 10 redraws a second
      last_draw_ = clock::now();
      constexpr int width = 24;
      const int filled = int(width * double(step) / double(total_));
      std::string bar(std::size_t(filled), '#');
      bar.resize(width, '.');
      std::fprintf(out_, "\r[%s] %llu/%llu %s | %.1f img/s | ETA %s\x1b[K", bar.c_str(),
                   static_cast<unsigned long long>(step), static_cast<unsigned long long>(total_),
                   terms.c_str(), images_per_s, eta.c_str());
      if (last) std::fputc('\n', out_);
    } else if (last || step % log_every_ == 0) {
      std::fprintf(out_, "step %llu/%llu %s | %.1f img/s | elapsed %s | ETA %s\n",
                   static_cast<unsigned long long>(step), static_cast<unsigned long long>(total_),
                   terms.c_str(), images_per_s, format_duration(elapsed).c_str(), eta.c_str());
    }
    std::fflush(out_);
  }

  /// Ends a redrawn line before other output.
  void interrupt() {
    if (terminal_) std::fputc('\n', out_);
  }

  double elapsed() const { return seconds_since(start_); }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds_since(clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
  }

  std::uint64_t first_, total_, log_every_;
  std::FILE* out_;
  bool terminal_;
  clock::time_point start_, last_draw_{};
};

}  // namespace splitmask::examples
