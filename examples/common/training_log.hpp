// training_log: the per-step metrics of a run as JSON lines (one object per step, flushed as it
// is written, so a crash loses nothing logged), and the loss curves drawn as an SVG image.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <splitmask/core/error.hpp>
#include <splitmask/io/atomic_file.hpp>

namespace splitmask::examples {

class metrics_log {
 public:
  /// Opens `path` for a run that has done `done_steps` steps: the records of later steps (left
  /// by a run that went on after its last checkpoint) are dropped, so a resumed run's log reads
  /// as one run; so are lines that are not a record with a step. done_steps = 0 starts a new log.
  metrics_log(std::string path, std::uint64_t done_steps) : path_(std::move(path)) {
    if (done_steps > 0) {
      std::ifstream in(path_);
      std::string line;
      while (std::getline(in, line)) {
        auto record = nlohmann::json::parse(line, nullptr, false);
        if (record.is_object() && record.contains("step") &&
            record["step"].is_number_unsigned() &&
            record["step"].get<std::uint64_t>() <= done_steps)
          records_.push_back(std::move(record));
      }
    }
    std::string text;
    for (const auto& r : records_) text += r.dump() + "\n";
    write_file_atomically(path_, text);
    out_ = std::fopen(path_.c_str(), "a");
    if (!out_) throw file_error(path_ + ": cannot open for appending");
  }
  metrics_log(const metrics_log&) = delete;
  metrics_log& operator=(const metrics_log&) = delete;
  ~metrics_log() { std::fclose(out_); }

  void append(nlohmann::json record) {
    const std::string line = record.dump() + "\n";
    if (std::fputs(line.c_str(), out_) < 0 || std::fflush(out_) != 0)
      throw file_error(path_ + ": cannot write the metrics");
    records_.push_back(std::move(record));
  }
  const std::vector<nlohmann::json>& records() const { return records_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<nlohmann::json> records_;
  std::FILE* out_ = nullptr;
};

/// The step between round tick values (1, 2 or 5 times a power of ten) that cuts `span` into
/// about `count` parts.
inline double round_tick_step(double span, int count = 5) {
  const double raw = span / count, power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * power * 1.0001) return m * power;
  return 10 * power;
}

/// Draws `series` (keys of the records) against their "step" as an SVG line chart at `path`
/// (written atomically), with axes, round ticks and a legend.
inline void write_loss_curve_svg(const std::string& path, const std::vector<nlohmann::json>& records,
                                 const std::vector<std::string>& series, const std::string& title) {
  constexpr double width = 820, height = 440, left = 64, right = 170, top = 40, bottom = 48;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double x_max = 1, y_min = INFINITY, y_max = -INFINITY;
  for (const auto& r : records) {
    x_max = std::max(x_max, r.value("step", 0.0));
    for (const auto& s : series)
      if (r.contains(s) && r[s].is_number()) {
        const double y = r[s].get<double>();
        if (std::isfinite(y)) y_min = std::min(y_min, y), y_max = std::max(y_max, y);
      }
  }
  if (!(y_min <= y_max)) y_min = 0, y_max = 1;
  if (y_max - y_min < 1e-9) y_min -= 0.5, y_max += 0.5;
  // The y axis ends on round ticks, the x axis at the last step (its ticks round steps).
  const double y_step = round_tick_step(y_max - y_min), x_step = round_tick_step(x_max);
  y_min = std::floor(y_min / y_step + 1e-9) * y_step;
  y_max = std::ceil(y_max / y_step - 1e-9) * y_step;
  auto px = [&](double x) { return left + plot_w * x / x_max; };
  auto py = [&](double y) { return top + plot_h * (1 - (y - y_min) / (y_max - y_min)); };

  std::ostringstream svg;
  svg.precision(5);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
      << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << left << "\" y=\"24\" font-size=\"15\">" << title << "</text>\n";
  for (double y = y_min; y <= y_max + 1e-9 * y_step; y += y_step) {  // grid and y ticks
    const double shown = std::abs(y) < 1e-9 * y_step ? 0.0 : y;  // no "-0" or "1e-17"
    svg << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << py(y)
        << "\" y2=\"" << py(y) << "\" stroke=\"#e4e4e4\"/>\n"
        << "<text x=\"" << left - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">"
        << shown << "</text>\n";
  }
  for (double x = 0; x <= x_max + 1e-9 * x_step; x += x_step)
    svg << "<text x=\"" << px(x) << "\" y=\"" << top + plot_h + 18
        << "\" text-anchor=\"middle\">" << std::llround(x) << "</text>\n";
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << plot_w << "\" height=\""
      << plot_h << "\" fill=\"none\" stroke=\"#444\"/>\n"
      << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << height - 10
      << "\" text-anchor=\"middle\">step</text>\n";
  const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
  const std::size_t stride = std::max<std::size_t>(1, records.size() / 2000);  // <= ~2000 points
  for (std::size_t k = 0; k < series.size(); ++k) {
    const char* colour = colours[k % 6];
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
    for (std::size_t i = 0; i < records.size(); i += stride) {
      const auto& r = records[i];
      if (!r.contains(series[k]) || !r[series[k]].is_number()) continue;
      const double y = r[series[k]].get<double>();
      if (std::isfinite(y)) svg << px(r.value("step", 0.0)) << "," << py(y) << " ";
    }
    svg << "\"/>\n";
    const double ly = top + 16 + 20.0 * double(k);
    svg << "<line x1=\"" << left + plot_w + 14 << "\" x2=\"" << left + plot_w + 40 << "\" y1=\""
        << ly << "\" y2=\"" << ly << "\" stroke=\"" << colour << "\" stroke-width=\"3\"/>\n"
        << "<text x=\"" << left + plot_w + 46 << "\" y=\"" << ly + 4 << "\">" << series[k]
        << "</text>\n";
  }
  svg << "</svg>\n";
  write_file_atomically(path, svg.str());
}

}  // namespace splitmask::examples
