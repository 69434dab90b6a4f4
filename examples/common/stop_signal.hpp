// A long run's stop request: the first Ctrl-C (SIGINT) or SIGTERM asks the run to save its state
// after the current step and end; a second one ends the process at once (status 130).
#pragma once

#include <atomic>
#include <csignal>
#include <cstdlib>

namespace splitmask::examples {

/// Set by the handler stop_on_signals() installs.
inline std::atomic<bool> stop_requested{false};

namespace detail {
inline void on_stop_signal(int) {
  if (stop_requested.exchange(true)) std::_Exit(130);
}
}  // namespace detail

/// From now on, SIGINT and SIGTERM set stop_requested (the second one ends the process).
inline void stop_on_signals() {
  std::signal(SIGINT, detail::on_stop_signal);
  std::signal(SIGTERM, detail::on_stop_signal);
}

}  // namespace splitmask::examples
