// Declaring your own ViT sizes: two differently sized encoders in one program, each a type
// whose sizes the compiler checks (a bad combination is a compile error that says what to
// change). Runs each on random images and prints its sizes and the mean-pooled features.
#include <cmath>
#include <cstdio>
#include <ratio>
#include <splitmask/splitmask.hpp>

using namespace splitmask;

// 32 x 32 RGB images, patch 8 (16 patches), a narrow and shallow encoder: image size, channels,
// patch size, width, depth, heads.
using tiny_vit = vit_config<32, 3, 8, 96, 4, 4>;

// 28 x 28 grey images, patch 7 (16 patches), wider, with learned positions instead of the fixed
// sin-cos ones.
using my_vit = vit_config<28, 1, 7, 128, 6, 4>::with_position<position_embedding::learned>;

// What pre-training adds is the objective's: here SplitMask with a vocabulary of 256, a 3/4 mask
// ratio and a decoder of width 64, 2 blocks and 2 heads (trainer<my_splitmask, my_vit> trains it).
using my_splitmask = splitmask_objective<256, std::ratio<3, 4>, decoder_config<64, 2, 2>>;

// Uncomment to see the compiler refuse a width that the heads do not divide:
// using broken = vit_config<32, 3, 8, 100, 4, 3>;  constexpr auto n = broken::patches;

template <class Config, class Objective = splitmask_objective<>>
int run(const char* name, std::size_t batch) {
  using model = typename Objective::template model<Config, float, device::cpu>;
  std::printf("%s: %zu x %zu x %zu images, patch %zu -> N = %zu patches of %zu values\n", name,
              Config::image_size, Config::image_size, Config::channels, Config::patch_size,
              Config::patches, Config::patch_length);
  std::printf(
      "  width %zu, depth %zu, %zu heads of %zu; SplitMask's subsets N_A = %zu, N_B = %zu\n",
      Config::width, Config::depth, Config::heads, Config::head_width, model::N_A, model::N_B);
  std::printf("  parameters: encoder %zu, SplitMask decoder %zu\n", Config::encoder_parameters,
              model::decoder_type::parameter_count());

  vit_encoder<Config> encoder(/*seed=*/1);
  tensor<float, typename vit_encoder<Config>::image_extents> images(batch);  // (B, C, S, S)
  images = normal<float>(counter_rng(2), images.extents(), 0.f, 1.f);
  vit_features<Config> features;
  const auto f = features(encoder, images);  // (B, D)

  // LayerNorm then a mean over patches: finite, and different for different images.
  bool finite = true;
  for (std::size_t i = 0; i < f.size(); ++i) finite = finite && std::isfinite(f.data()[i]);
  const bool distinct = f(0, 0) != f(1, 0);
  std::printf("  features %s: [%+.4f %+.4f %+.4f ...] %s\n\n", to_string(f.extents()).c_str(),
              f(0, 0), f(0, 1), f(0, 2), finite && distinct ? "ok" : "WRONG");
  return finite && distinct ? 0 : 1;
}

int main() { return run<tiny_vit>("tiny_vit", 4) | run<my_vit, my_splitmask>("my_vit", 4); }
