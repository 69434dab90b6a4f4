// linear_probe: multinomial logistic regression on frozen features, the standard measure of a
// representation. Features are standardised with the training set's mean and deviation; the
// L2 penalty is chosen on a held-out part of the training labels, then the probe is fitted again
// on all of them. The fit is full-batch L-BFGS: the problem is convex and small (F x K
// parameters), so the result depends on an iteration cap, not on an SGD schedule.
//
//   train (M, F)   test (T, F)   labels (M), (T)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "splitmask/eval/label_fraction.hpp"
#include "splitmask/eval/linear_classifier.hpp"

namespace splitmask {

/// Per-feature mean and standard deviation of a training set; a constant feature gets
/// deviation 1, so standardising only centres it.
struct standardizer {
  Eigen::RowVectorXf mean, inv_std;

  static standardizer fit(const Eigen::Ref<const row_matrix<float>>& x) {
    standardizer s;
    const Eigen::RowVectorXd m = x.cast<double>().colwise().mean();
    const Eigen::RowVectorXd var =
        (x.cast<double>().rowwise() - m).array().square().colwise().mean();
    s.mean = m.cast<float>();
    s.inv_std = var.unaryExpr([](double v) { return v > 1e-12 ? 1 / std::sqrt(v) : 1.0; })
                    .cast<float>();
    return s;
  }
  row_matrix<float> apply(const Eigen::Ref<const row_matrix<float>>& x) const {
    return (x.rowwise() - mean).array().rowwise() * inv_std.array();
  }
};

struct lbfgs_options {
  int max_iterations = 300;
  int memory = 10;
  double gradient_tolerance = 1e-4;  // stop when the largest gradient entry falls below this
};

/// Fits `model` (starting from its current parameters) to minimise the mean cross-entropy plus
/// l2/2 · ||W||² (the bias is not penalised) on x (M, F) by L-BFGS with a backtracking Armijo
/// line search. Returns the iterations taken.
inline int fit_logistic_regression(linear_classifier<float>& model,
                                   const Eigen::Ref<const row_matrix<float>>& x,
                                   const std::vector<std::int32_t>& labels, double l2,
                                   const lbfgs_options& options = {}) {
  if (std::size_t(x.rows()) != labels.size())
    throw std::invalid_argument("splitmask::fit_logistic_regression: features and labels differ");
  const Eigen::Index K = Eigen::Index(model.classes()), F = Eigen::Index(model.features());
  const Eigen::Index size = K * F + K;
  using vector = Eigen::VectorXd;
  auto unpack = [&](const vector& theta) {
    model.weight = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                                                  Eigen::RowMajor>>(theta.data(), K, F)
                       .cast<float>();
    model.bias = theta.tail(K).cast<float>();
  };
  row_matrix<float> d_logits, d_weight;
  Eigen::VectorXf d_bias;
  auto objective = [&](const vector& theta, vector& gradient) {
    unpack(theta);
    const double loss = softmax_cross_entropy<float>(model.logits(x), labels.data(), 0, &d_logits);
    model.backward(x, d_logits, d_weight, d_bias);
    gradient.resize(size);
    Eigen::Map<row_matrix<double>>(gradient.data(), K, F) =
        d_weight.cast<double>() + l2 * theta.head(K * F).reshaped<Eigen::RowMajor>(K, F);
    gradient.tail(K) = d_bias.cast<double>();
    return loss + 0.5 * l2 * theta.head(K * F).squaredNorm();
  };
  vector theta(size);
  Eigen::Map<row_matrix<double>>(theta.data(), K, F) = model.weight.cast<double>();
  theta.tail(K) = model.bias.cast<double>();
  vector g, g_new;
  double f = objective(theta, g);
  std::deque<vector> s_list, y_list;
  std::deque<double> rho_list;
  int iteration = 0;
  for (; iteration < options.max_iterations; ++iteration) {
    if (g.lpNorm<Eigen::Infinity>() < options.gradient_tolerance) break;
    // Two-loop recursion: direction = -H g.
    vector q = g;
    std::vector<double> alpha(s_list.size());
    for (std::size_t i = s_list.size(); i-- > 0;) {
      alpha[i] = rho_list[i] * s_list[i].dot(q);
      q -= alpha[i] * y_list[i];
    }
    if (!s_list.empty())
      q *= s_list.back().dot(y_list.back()) / y_list.back().squaredNorm();
    else
      q /= std::max(1.0, g.norm());  // first step: a unit-length move
    for (std::size_t i = 0; i < s_list.size(); ++i) {
      const double beta = rho_list[i] * y_list[i].dot(q);
      q += (alpha[i] - beta) * s_list[i];
    }
    vector direction = -q;
    double slope = g.dot(direction);
    if (!(slope < 0)) {  // not a descent direction: restart from steepest descent
      s_list.clear(), y_list.clear(), rho_list.clear();
      direction = -g / std::max(1.0, g.norm());
      slope = g.dot(direction);
    }
    double step = 1, f_new = 0;
    vector theta_new;
    bool accepted = false;
    for (int tries = 0; tries < 40; ++tries, step *= 0.5) {
      theta_new = theta + step * direction;
      f_new = objective(theta_new, g_new);
      if (std::isfinite(f_new) && f_new <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;  // no decrease along the direction: at the optimum up to rounding
    vector s = theta_new - theta, y = g_new - g;
    const double sy = s.dot(y);
    if (sy > 1e-12 * y.squaredNorm()) {
      if (int(s_list.size()) == options.memory)
        s_list.pop_front(), y_list.pop_front(), rho_list.pop_front();
      s_list.push_back(std::move(s));
      y_list.push_back(std::move(y));
      rho_list.push_back(1 / sy);
    }
    const double decrease = f - f_new;
    theta.swap(theta_new);
    g.swap(g_new);
    f = f_new;
    if (decrease <= 1e-10 * std::max(1.0, std::abs(f))) {
      ++iteration;
      break;
    }
  }
  unpack(theta);
  return iteration;
}

struct linear_probe_options {
  /// Candidate penalties, tried from the largest down, each fit starting from the last.
  std::vector<double> l2_grid{1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5};
  double held_out = 0.1;  // of each class's training labels, for choosing the penalty
  std::uint64_t seed = 0;
  lbfgs_options lbfgs{};
};

struct linear_probe_result {
  double accuracy = 0;                  // on the test set
  double train_accuracy = 0;            // of the final fit on all training labels
  double l2 = 0;                        // the chosen penalty
  std::vector<double> held_out_accuracy;  // for each candidate of the grid, in its order
  int iterations = 0;                   // of the final fit
};

/// Chooses the penalty on a held-out part of `train`, fits again on all of it, and measures
/// test accuracy. Standardisation uses statistics of the rows it fits on.
inline linear_probe_result linear_probe(const Eigen::Ref<const row_matrix<float>>& train,
                                        const std::vector<std::int32_t>& train_labels,
                                        const Eigen::Ref<const row_matrix<float>>& test,
                                        const std::vector<std::int32_t>& test_labels,
                                        const linear_probe_options& options = {}) {
  if (options.l2_grid.empty())
    throw std::invalid_argument("splitmask::linear_probe: the penalty grid is empty");
  const std::size_t classes = std::max(count_classes(train_labels), count_classes(test_labels));
  auto rows = [](const Eigen::Ref<const row_matrix<float>>& x,
                 const std::vector<std::size_t>& index) {
    row_matrix<float> out(Eigen::Index(index.size()), x.cols());
    for (std::size_t i = 0; i < index.size(); ++i) out.row(Eigen::Index(i)) = x.row(Eigen::Index(index[i]));
    return out;
  };
  auto labels_of = [&](const std::vector<std::size_t>& index) {
    std::vector<std::int32_t> out;
    for (const std::size_t i : index) out.push_back(train_labels[i]);
    return out;
  };
  std::vector<std::size_t> all(train_labels.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto [fit_index, held_index] =
      hold_out(train_labels, all, options.held_out, options.seed);
  linear_probe_result result;
  std::size_t best = 0;
  {
    const row_matrix<float> fit_rows = rows(train, fit_index);
    const standardizer scale = standardizer::fit(fit_rows);
    const row_matrix<float> fit_x = scale.apply(fit_rows);
    const row_matrix<float> held_x = scale.apply(rows(train, held_index));
    const auto fit_labels = labels_of(fit_index), held_labels = labels_of(held_index);
    linear_classifier<float> model(std::size_t(train.cols()), classes);
    for (std::size_t i = 0; i < options.l2_grid.size(); ++i) {
      fit_logistic_regression(model, fit_x, fit_labels, options.l2_grid[i], options.lbfgs);
      result.held_out_accuracy.push_back(accuracy(model.predict(held_x), held_labels));
      if (result.held_out_accuracy[i] > result.held_out_accuracy[best]) best = i;
    }
  }
  result.l2 = options.l2_grid[best];
  const standardizer scale = standardizer::fit(train);
  const row_matrix<float> train_x = scale.apply(train);
  linear_classifier<float> model(std::size_t(train.cols()), classes);
  result.iterations =
      fit_logistic_regression(model, train_x, train_labels, result.l2, options.lbfgs);
  result.train_accuracy = accuracy(model.predict(train_x), train_labels);
  result.accuracy = accuracy(model.predict(scale.apply(test)), test_labels);
  return result;
}

}  // namespace splitmask
