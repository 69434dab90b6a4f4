// knn: the k-nearest-neighbour classifier on frozen features, as self-supervised papers report
// it (Wu et al. 2018; DINO): cosine similarity, the k most similar training images vote, each
// with weight exp(similarity / temperature). No training and no hyper-parameter search: it
// measures whether the features put images of one class together.
//
//   train (M, F)   query (Q, F)   labels (M)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "splitmask/eval/label_fraction.hpp"
#include "splitmask/eval/linear_classifier.hpp"
#include "splitmask/ops/common.hpp"

namespace splitmask {

struct knn_options {
  std::size_t k = 20;
  double temperature = 0.07;
};

namespace detail {
// Rows scaled to unit length (a zero row stays zero: it is equally far from everything).
inline row_matrix<float> unit_rows(const Eigen::Ref<const row_matrix<float>>& x) {
  row_matrix<float> out = x;
  for (Eigen::Index i = 0; i < out.rows(); ++i) {
    const float n = out.row(i).norm();
    if (n > 0) out.row(i) /= n;
  }
  return out;
}
}  // namespace detail

/// The predicted class of each query row.
inline std::vector<std::int32_t> knn_classify(const Eigen::Ref<const row_matrix<float>>& train,
                                              const std::vector<std::int32_t>& train_labels,
                                              const Eigen::Ref<const row_matrix<float>>& query,
                                              const knn_options& options = {}) {
  if (std::size_t(train.rows()) != train_labels.size())
    throw std::invalid_argument("splitmask::knn_classify: features and labels differ in number");
  if (train.cols() != query.cols())
    throw std::invalid_argument("splitmask::knn_classify: training features of length " +
                                std::to_string(train.cols()) + ", queries of " +
                                std::to_string(query.cols()));
  if (options.k == 0 || !(options.temperature > 0))
    throw std::invalid_argument("splitmask::knn_classify: k must be >= 1, temperature > 0");
  const std::size_t classes = count_classes(train_labels);
  const std::size_t k = std::min<std::size_t>(options.k, train_labels.size());
  const row_matrix<float> bank = detail::unit_rows(train);
  const row_matrix<float> queries = detail::unit_rows(query);
  std::vector<std::int32_t> predicted(std::size_t(query.rows()));
  constexpr Eigen::Index block = 512;  // query rows per similarity product: bounded memory
  row_matrix<float> similarity;
  for (Eigen::Index first = 0; first < queries.rows(); first += block) {
    const Eigen::Index rows = std::min(block, queries.rows() - first);
    similarity.noalias() = queries.middleRows(first, rows) * bank.transpose();
    detail::parallel_for(std::size_t(rows), 4 * train_labels.size(), [&](std::size_t r) {
      std::vector<std::pair<float, std::int32_t>> scored(train_labels.size());
      for (std::size_t j = 0; j < scored.size(); ++j)
        scored[j] = {similarity(Eigen::Index(r), Eigen::Index(j)), train_labels[j]};
      std::nth_element(scored.begin(), scored.begin() + std::ptrdiff_t(k - 1), scored.end(),
                       [](const auto& a, const auto& b) { return a.first > b.first; });
      std::vector<double> votes(classes, 0.0);
      for (std::size_t j = 0; j < k; ++j)
        votes[std::size_t(scored[j].second)] +=
            std::exp(double(scored[j].first) / options.temperature);
      predicted[std::size_t(first) + r] =
          std::int32_t(std::max_element(votes.begin(), votes.end()) - votes.begin());
    });
  }
  return predicted;
}

}  // namespace splitmask
