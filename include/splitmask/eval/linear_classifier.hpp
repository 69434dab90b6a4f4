// linear_classifier: logits = x Wᵀ + b over sizes known only at run time (a dataset's classes,
// a feature's length), and its loss, softmax cross-entropy with label smoothing. It is the
// linear probe's model and the fine-tuning head. Eigen computes it; features are row-major.
//
//   x, d_x (M, F)   weight (K, F)   bias (K)   logits, d_logits (M, K)   labels (M) in [0, K)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

namespace splitmask {

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The mean over rows of the smoothed cross-entropy, -Σ_k q_k log softmax(z)_k with
/// q = (1 - smoothing) onehot(label) + smoothing / K; when d_logits is given it receives the
/// gradient of the mean, (softmax(z) - q) / M. Throws std::invalid_argument for a label outside
/// [0, K) or a count mismatch.
template <class T>
double softmax_cross_entropy(const Eigen::Ref<const row_matrix<T>>& logits,
                             const std::int32_t* labels, double smoothing,
                             row_matrix<T>* d_logits = nullptr) {
  const Eigen::Index M = logits.rows(), K = logits.cols();
  if (!(smoothing >= 0 && smoothing < 1))
    throw std::invalid_argument("splitmask: label smoothing must lie in [0, 1)");
  if (d_logits) d_logits->resize(M, K);
  double total = 0;
  for (Eigen::Index i = 0; i < M; ++i) {
    const std::int32_t y = labels[i];
    if (y < 0 || y >= K)
      throw std::invalid_argument("splitmask: label " + std::to_string(y) + " of row " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(K) +
                                  ")");
    const auto z = logits.row(i);
    const double m = double(z.maxCoeff());
    double sum = 0, mean_z = 0;
    for (Eigen::Index k = 0; k < K; ++k) {
      sum += std::exp(double(z(k)) - m);
      mean_z += double(z(k));
    }
    mean_z /= double(K);
    const double lse = m + std::log(sum);
    total += lse - (1 - smoothing) * double(z(y)) - smoothing * mean_z;
    if (d_logits) {
      const double g = 1.0 / double(M);
      for (Eigen::Index k = 0; k < K; ++k)
        (*d_logits)(i, k) = T(g * (std::exp(double(z(k)) - lse) - smoothing / double(K) -
                                   (k == y ? 1 - smoothing : 0.0)));
    }
  }
  return M ? total / double(M) : 0.0;
}

template <class T = float>
class linear_classifier {
 public:
  linear_classifier(std::size_t features, std::size_t classes)
      : weight(row_matrix<T>::Zero(Eigen::Index(classes), Eigen::Index(features))),
        bias(Eigen::Matrix<T, Eigen::Dynamic, 1>::Zero(Eigen::Index(classes))) {
    if (features == 0 || classes < 2)
      throw std::invalid_argument("splitmask::linear_classifier: needs features and >= 2 classes");
  }

  std::size_t features() const { return std::size_t(weight.cols()); }
  std::size_t classes() const { return std::size_t(weight.rows()); }

  /// logits (M, K) of x (M, F).
  row_matrix<T> logits(const Eigen::Ref<const row_matrix<T>>& x) const {
    check(x, "logits");
    row_matrix<T> z = x * weight.transpose();
    z.rowwise() += bias.transpose();
    return z;
  }

  /// The class of largest logit for each row of x.
  std::vector<std::int32_t> predict(const Eigen::Ref<const row_matrix<T>>& x) const {
    const row_matrix<T> z = logits(x);
    std::vector<std::int32_t> classes(std::size_t(z.rows()));
    for (Eigen::Index i = 0; i < z.rows(); ++i) {
      Eigen::Index best = 0;
      z.row(i).maxCoeff(&best);
      classes[std::size_t(i)] = std::int32_t(best);
    }
    return classes;
  }

  /// The gradients of the parameters from d_logits (written to d_weight, d_bias), and, when
  /// d_x is given, of the input.
  void backward(const Eigen::Ref<const row_matrix<T>>& x,
                const Eigen::Ref<const row_matrix<T>>& d_logits, row_matrix<T>& d_weight,
                Eigen::Matrix<T, Eigen::Dynamic, 1>& d_bias, row_matrix<T>* d_x = nullptr) const {
    check(x, "backward");
    d_weight.noalias() = d_logits.transpose() * x;
    d_bias = d_logits.colwise().sum().transpose();
    if (d_x) d_x->noalias() = d_logits * weight;
  }

  row_matrix<T> weight;                     // (K, F)
  Eigen::Matrix<T, Eigen::Dynamic, 1> bias;  // (K)

 private:
  void check(const Eigen::Ref<const row_matrix<T>>& x, const char* what) const {
    if (x.cols() != weight.cols())
      throw std::invalid_argument(std::string("splitmask::linear_classifier::") + what +
                                  ": features of length " + std::to_string(x.cols()) +
                                  ", the classifier takes " + std::to_string(weight.cols()));
  }
};

/// The fraction of predictions equal to their labels (0 for none).
inline double accuracy(const std::vector<std::int32_t>& predicted,
                       const std::vector<std::int32_t>& labels) {
  if (predicted.size() != labels.size())
    throw std::invalid_argument("splitmask::accuracy: predictions and labels differ in number");
  std::size_t right = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) right += predicted[i] == labels[i];
  return labels.empty() ? 0.0 : double(right) / double(labels.size());
}

}  // namespace splitmask
