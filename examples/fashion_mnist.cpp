// SPDX-License-Identifier: MIT
// A small vision Transformer on Fashion-MNIST with a choice of attention: patches → tokens (+ a
// learned position embedding), pre-LN encoder layers, mean pooling, a linear classifier.
// Writes a CSV log, a JSON summary, a learning curve and an attention map (SVG) to --out.
//
//   fashion_mnist --attention ikan-direct --epochs 8          (see --help)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include <ika/autodiff/autodiff.hpp>
#include <ika/data/idx.hpp>
#include <ika/nn/nn.hpp>

#include "common/cli.hpp"
#include "common/progress.hpp"
#include "common/svg.hpp"

namespace ad = ika::ad;
namespace nn = ika::nn;
using ika::index_t;

namespace {

struct settings {
  std::string attention;
  index_t d_model, heads, layers, ff, patch, M, batch;
  double p, lr, weight_decay, dropout;
  int epochs;
  std::string augment;
  std::uint64_t seed;
  index_t train_limit, test_limit;
  std::filesystem::path data_dir, out_dir;
};

// The images as (N, 1, 28, 28) floats standardised with the training set's mean and deviation.
struct dataset {
  std::vector<float> images;
  std::vector<int> labels;
  index_t count = 0, side = 28;
};

dataset load(const std::filesystem::path& dir, ika::data::split split, index_t limit) {
  auto set = ika::data::load_mnist(dir, split, limit);
  dataset d;
  d.count = set.count;
  d.side = set.rows;
  d.labels = std::move(set.labels);
  d.images = std::move(set.images);
  constexpr float mean = 0.2860f, deviation = 0.3530f; // Fashion-MNIST training set
  for (float& x : d.images) x = (x - mean) / deviation;
  return d;
}

// Tokens from patches, a learned position embedding, pre-LN encoder layers, mean pooling, linear.
template <class Attention>
class vision_transformer {
public:
  vision_transformer(const settings& s, index_t side, const std::vector<Attention>& attention)
      : patch_(s.patch), tokens_((side / s.patch) * (side / s.patch)),
        embed_(s.patch * s.patch, s.d_model, true, nn::derive_seed(s.seed, 100)), final_norm_(s.d_model),
        head_(s.d_model, 10, true, nn::derive_seed(s.seed, 101)) {
    const ika::counter_rng rng(nn::derive_seed(s.seed, 102));
    position_ = nn::make_parameter<float>(ad::shape{1, tokens_, s.d_model},
                                          [&](index_t i) { return 0.02 * rng.normal(0, std::uint64_t(i)); });
    for (index_t l = 0; l < s.layers; ++l)
      layers_.emplace_back(attention[std::size_t(l)], s.d_model, s.ff, s.dropout, nn::activation::gelu, true,
                           nn::derive_seed(s.seed, 200 + std::uint64_t(l)));
  }

  // images (B, 1, side, side) → tokens after the embedding (B, T, d_model)
  ad::variable<float> embed(ad::tape<float>& tp, const ad::variable<float>& images) {
    return ad::add(tp, embed_(tp, ad::patches(tp, images, patch_)), position_);
  }
  ad::variable<float> operator()(ad::tape<float>& tp, const ad::variable<float>& images) {
    auto h = embed(tp, images);
    for (auto& layer : layers_) h = layer(tp, h);
    return head_(tp, ad::mean(tp, final_norm_(tp, h), 1));
  }
  ad::variable<float> regularizer(ad::tape<float>& tp, double training_points) {
    ad::variable<float> total;
    for (auto& layer : layers_)
      if (auto r = layer.self_attn().regularizer(tp, training_points); r.defined())
        total = total.defined() ? ad::add(tp, total, r) : r;
    return total;
  }
  void collect(nn::parameter_list<float>& out) const {
    out.push_back({"position", position_});
    embed_.collect(out, "embed.");
    for (std::size_t l = 0; l < layers_.size(); ++l) layers_[l].collect(out, "layers." + std::to_string(l) + ".");
    final_norm_.collect(out, "norm.");
    head_.collect(out, "head.");
  }
  void train(bool on) {
    for (auto& layer : layers_) layer.train(on);
  }
  // attention weights of the first layer for one image: (H, T, T)
  std::vector<double> first_layer_attention(const ad::variable<float>& image) {
    ad::no_grad no_recording;
    ad::tape<float> tp;
    const auto x = layers_.front().norm1()(tp, embed(tp, image));
    return layers_.front().self_attn().attention_weights(x);
  }
  index_t tokens() const { return tokens_; }

private:
  index_t patch_, tokens_;
  nn::linear<float> embed_;
  ad::variable<float> position_;
  std::vector<nn::encoder_layer<float, Attention>> layers_;
  nn::layer_norm<float> final_norm_;
  nn::linear<float> head_;
};

struct epoch_record {
  int epoch;
  double train_loss, train_accuracy, test_accuracy, seconds, images_per_second;
};

// Training-time augmentation: a mirror image with probability 1/2 (garments are left-right
// symmetric) and, for "flip-shift", a shift of up to one pixel each way, filled with background.
// The draw depends on (seed, step, position in the batch) only, so it is the same for any thread count.
struct augmentation {
  bool flip = false;
  index_t max_shift = 0;
  ika::counter_rng rng{0};

  static augmentation parse(const std::string& name, std::uint64_t seed) {
    const ika::counter_rng rng(nn::derive_seed(seed, 300));
    if (name == "none") return {false, 0, rng};
    if (name == "flip") return {true, 0, rng};
    if (name == "flip-shift") return {true, 1, rng};
    throw std::invalid_argument("--augment must be none, flip or flip-shift, not '" + name + "'");
  }
  bool active() const { return flip || max_shift > 0; }

  void apply(const float* in, float* out, index_t side, float background, std::uint64_t step, index_t b) const {
    const auto w = rng.words(step, std::uint64_t(b));
    const bool mirror = flip && (w[0] & 1u);
    const index_t span = 2 * max_shift + 1;
    const index_t dy = index_t(w[1] % std::uint32_t(span)) - max_shift, dx = index_t(w[2] % std::uint32_t(span)) - max_shift;
    for (index_t y = 0; y < side; ++y)
      for (index_t x = 0; x < side; ++x) {
        const index_t sy = y - dy, sx0 = x - dx, sx = mirror ? side - 1 - sx0 : sx0;
        out[y * side + x] = (sy >= 0 && sy < side && sx0 >= 0 && sx0 < side) ? in[sy * side + sx] : background;
      }
  }
};

// a batch of images (B, 1, side, side) and their labels from the given order
void gather(const dataset& d, const std::vector<index_t>& order, index_t first, index_t n, ad::variable<float>& images,
            std::vector<int>& labels, const augmentation* augment = nullptr, std::uint64_t step = 0) {
  const index_t pixels = d.side * d.side;
  images.value().resize(ad::shape{n, 1, d.side, d.side});
  labels.resize(std::size_t(n));
  constexpr float background = (0.0f - 0.2860f) / 0.3530f; // a black pixel after standardisation
  for (index_t b = 0; b < n; ++b) {
    const index_t i = order[std::size_t(first + b)];
    float* out = images.value().data() + b * pixels;
    if (augment && augment->active())
      augment->apply(d.images.data() + i * pixels, out, d.side, background, step, b);
    else
      std::copy_n(d.images.data() + i * pixels, pixels, out);
    labels[std::size_t(b)] = d.labels[std::size_t(i)];
  }
}

template <class Model>
double accuracy(Model& model, const dataset& d, index_t batch) {
  model.train(false);
  ad::no_grad no_recording;
  ad::tape<float> tp;
  ad::variable<float> images(ad::tensor<float>(ad::shape{1}));
  std::vector<int> labels;
  std::vector<index_t> order(std::size_t(d.count));
  std::iota(order.begin(), order.end(), index_t(0));
  index_t correct = 0;
  for (index_t first = 0; first < d.count; first += batch) {
    const index_t n = std::min(batch, d.count - first);
    tp.reset();
    gather(d, order, first, n, images, labels);
    const auto logits = model(tp, images);
    for (index_t b = 0; b < n; ++b) {
      const float* row = logits.value().data() + b * 10;
      correct += int(std::max_element(row, row + 10) - row) == labels[std::size_t(b)];
    }
  }
  model.train(true);
  return double(correct) / double(d.count);
}

void write_learning_curve(const std::vector<epoch_record>& log, const std::vector<double>& step_loss, index_t steps_per_epoch,
                          const settings& s) {
  namespace svg = ika_examples::svg;
  svg::series loss{"train loss (per step, smoothed)", {}, {}, "#1f77b4"};
  double smooth = step_loss.empty() ? 0 : step_loss.front();
  for (std::size_t i = 0; i < step_loss.size(); ++i) {
    smooth = 0.98 * smooth + 0.02 * step_loss[i];
    loss.x.push_back(double(i + 1) / double(steps_per_epoch));
    loss.y.push_back(smooth);
  }
  svg::series train{"train accuracy", {}, {}, "#1f77b4"}, test{"test accuracy", {}, {}, "#d62728"};
  for (const auto& r : log) {
    train.x.push_back(r.epoch);
    train.y.push_back(100 * r.train_accuracy);
    test.x.push_back(r.epoch);
    test.y.push_back(100 * r.test_accuracy);
  }
  const std::string title = "Fashion-MNIST, attention = " + s.attention;
  const std::string body = svg::line_chart_panel({loss}, title + ": loss", "epoch", "cross-entropy", 0, 0, 480, 340, true) +
                           svg::line_chart_panel({train, test}, title + ": accuracy", "epoch", "accuracy (%)", 480, 0, 480, 340);
  svg::write_file(s.out_dir / "learning_curve.svg", svg::document(960, 340, body));
}

void write_attention_map(const std::vector<double>& weights, const float* image, index_t side, index_t patch,
                         index_t heads, const settings& s) {
  namespace svg = ika_examples::svg;
  const index_t grid = side / patch, T = grid * grid;
  std::vector<double> pixels(std::size_t(side * side));
  for (index_t i = 0; i < side * side; ++i) pixels[std::size_t(i)] = std::max(0.0, double(image[i]) * 0.3530 + 0.2860);
  std::string body = svg::heat_map(pixels, int(side), int(side), 20, 40, 6, "input", true);
  // per head: the attention each patch receives, averaged over the querying patches
  for (index_t h = 0; h < heads; ++h) {
    std::vector<double> received(std::size_t(T), 0.0);
    for (index_t i = 0; i < T; ++i)
      for (index_t j = 0; j < T; ++j) received[std::size_t(j)] += weights[std::size_t((h * T + i) * T + j)] / double(T);
    body += svg::heat_map(received, int(grid), int(grid), 220 + double(h) * 180, 40, 168.0 / double(grid),
                          "head " + std::to_string(h) + ": attention received");
  }
  svg::write_file(s.out_dir / "attention_map.svg", svg::document(240 + double(heads) * 180, 230, body));
}

template <class Attention>
int train(const settings& s, const std::vector<Attention>& attention) {
  const dataset train_set = load(s.data_dir, ika::data::split::train, s.train_limit);
  const dataset test_set = load(s.data_dir, ika::data::split::test, s.test_limit);
  vision_transformer<Attention> model(s, train_set.side, attention);
  nn::parameter_list<float> params;
  model.collect(params);
  index_t parameter_count = 0;
  for (const auto& p : params) parameter_count += p.value.size();
  std::printf("fashion_mnist: attention %s, %ld layers, d_model %ld, %ld heads, %ld tokens, %ld parameters, %d threads\n",
              s.attention.c_str(), long(s.layers), long(s.d_model), long(s.heads), long(model.tokens()),
              long(parameter_count), omp_get_max_threads());
  std::printf("fashion_mnist: %ld training and %ld test images from %s\n", long(train_set.count), long(test_set.count),
              s.data_dir.c_str());

  std::vector<ad::variable<float>> variables = nn::variables(params);
  nn::adam<float> opt(variables, nn::adamw_options(s.lr, s.weight_decay));
  const index_t steps_per_epoch = (train_set.count + s.batch - 1) / s.batch;
  const nn::warmup_cosine_schedule schedule(steps_per_epoch / 2, long(steps_per_epoch) * s.epochs, 0.02);
  std::vector<index_t> order(std::size_t(train_set.count));
  std::iota(order.begin(), order.end(), index_t(0));
  std::mt19937_64 shuffle(s.seed);
  const augmentation augment = augmentation::parse(s.augment, s.seed);

  std::filesystem::create_directories(s.out_dir);
  std::ofstream csv(s.out_dir / "log.csv");
  csv << "epoch,train_loss,train_accuracy,test_accuracy,seconds,images_per_second\n";
  std::vector<epoch_record> log;
  std::vector<double> step_loss;
  ad::tape<float> tp;
  ad::variable<float> images(ad::tensor<float>(ad::shape{1}));
  std::vector<int> labels;
  long step = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= s.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), shuffle);
    ika_examples::progress_bar bar("epoch " + std::to_string(epoch) + "/" + std::to_string(s.epochs), long(train_set.count));
    double loss_sum = 0;
    index_t correct = 0, seen = 0;
    for (index_t first = 0; first < train_set.count; first += s.batch, ++step) {
      const index_t n = std::min(s.batch, train_set.count - first);
      tp.reset();
      gather(train_set, order, first, n, images, labels, &augment, std::uint64_t(step));
      const auto logits = model(tp, images);
      auto loss = ad::softmax_cross_entropy(tp, logits, std::span<const int>(labels));
      const float ce = loss.value()[0];
      if (auto r = model.regularizer(tp, double(train_set.count)); r.defined()) loss = ad::add(tp, loss, r);
      nn::zero_grad(params);
      tp.backward(loss);
      nn::clip_grad_norm(variables, 1.0);
      nn::apply_schedule(opt, schedule, s.lr, step);
      opt.step();
      for (index_t b = 0; b < n; ++b) {
        const float* row = logits.value().data() + b * 10;
        correct += int(std::max_element(row, row + 10) - row) == labels[std::size_t(b)];
      }
      seen += n;
      loss_sum += double(ce) * double(n);
      step_loss.push_back(ce);
      char status[96];
      std::snprintf(status, sizeof status, "loss %.3f acc %.1f%%", loss_sum / double(seen), 100.0 * double(correct) / double(seen));
      bar.update(long(seen), status);
    }
    bar.finish();
    const double seconds = bar.elapsed();
    const double test_accuracy = accuracy(model, test_set, 500);
    log.push_back({epoch, loss_sum / double(seen), double(correct) / double(seen), test_accuracy, seconds,
                   double(seen) / seconds});
    const auto& r = log.back();
    std::printf("epoch %d: train loss %.4f, train accuracy %.2f%%, test accuracy %.2f%% (%.0f s, %.0f img/s)\n", epoch,
                r.train_loss, 100 * r.train_accuracy, 100 * r.test_accuracy, seconds, r.images_per_second);
    csv << epoch << ',' << r.train_loss << ',' << r.train_accuracy << ',' << r.test_accuracy << ',' << seconds << ','
        << r.images_per_second << '\n';
    csv.flush();
    write_learning_curve(log, step_loss, steps_per_epoch, s);
  }
  const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // attention map of the first test image
  ad::variable<float> first_image(ad::tensor<float>(ad::shape{1, 1, test_set.side, test_set.side},
                                                    std::span<const float>(test_set.images.data(), std::size_t(test_set.side * test_set.side))));
  write_attention_map(model.first_layer_attention(first_image), test_set.images.data(), test_set.side, s.patch, s.heads, s);

  std::ofstream json(s.out_dir / "summary.json");
  json << "{\n  \"attention\": \"" << s.attention << "\",\n  \"layers\": " << s.layers << ",\n  \"d_model\": " << s.d_model
       << ",\n  \"heads\": " << s.heads << ",\n  \"patch\": " << s.patch << ",\n  \"M\": " << s.M << ",\n  \"p\": " << s.p
       << ",\n  \"epochs\": " << s.epochs << ",\n  \"batch\": " << s.batch << ",\n  \"augment\": \"" << s.augment << "\"" << ",\n  \"seed\": " << s.seed
       << ",\n  \"threads\": " << omp_get_max_threads() << ",\n  \"parameters\": " << parameter_count
       << ",\n  \"train_images\": " << train_set.count << ",\n  \"test_images\": " << test_set.count
       << ",\n  \"final_test_accuracy\": " << log.back().test_accuracy << ",\n  \"final_train_loss\": " << log.back().train_loss
       << ",\n  \"seconds\": " << total_seconds << "\n}\n";
  std::printf("fashion_mnist: test accuracy %.2f%% after %d epochs in %s; wrote %s/{log.csv, summary.json, "
              "learning_curve.svg, attention_map.svg}\n",
              100 * log.back().test_accuracy, s.epochs, ika_examples::progress_bar::clock_text(total_seconds).c_str(),
              s.out_dir.c_str());
  return 0;
}

// One attention module per layer, of the kind the command line names, its node run by Engine
// (the CPU's fused engines, or ika::cuda::attention_engine in fashion_mnist_cuda).
template <class Engine>
int dispatch(const settings& s) {
  const nn::attention_config base{.d_model = s.d_model, .heads = s.heads, .seed = s.seed};
  const index_t D = s.d_model / s.heads;
  auto config = [&](index_t layer) {
    auto c = base;
    c.seed = nn::derive_seed(s.seed, std::uint64_t(layer));
    return c;
  };
  using yaglom = ika::yaglom_rff<float>;
  if (s.attention == "softmax") {
    std::vector<nn::multihead_attention<float, ika::dot_product, ika::no_norm, nn::no_spectral_source, ika::grouped_heads, Engine>> a;
    for (index_t l = 0; l < s.layers; ++l) a.emplace_back(config(l));
    return train(s, a);
  }
  if (s.attention == "rbf-lp") {
    std::vector<nn::multihead_attention<float, ika::rbf, ika::lp, nn::no_spectral_source, ika::grouped_heads, Engine>> a;
    for (index_t l = 0; l < s.layers; ++l) a.emplace_back(config(l), ika::rbf{}, ika::lp{s.p});
    return train(s, a);
  }
  if (s.attention == "ikan-direct") {
    using source = nn::learned_points<float>;
    std::vector<nn::multihead_attention<float, yaglom, ika::lp, source, ika::grouped_heads, Engine>> a;
    for (index_t l = 0; l < s.layers; ++l)
      a.emplace_back(config(l), yaglom{}, ika::lp{s.p}, source({s.heads, D, s.M}, nn::derive_seed(s.seed, 50 + std::uint64_t(l))));
    return train(s, a);
  }
  if (s.attention == "ika") {
    using source = nn::generated_points<float>;
    std::vector<nn::multihead_attention<float, yaglom, ika::lp, source, ika::grouped_heads, Engine>> a;
    for (index_t l = 0; l < s.layers; ++l)
      a.emplace_back(config(l), yaglom{}, ika::lp{s.p}, source({s.heads, D, s.M}, nn::derive_seed(s.seed, 50 + std::uint64_t(l))));
    return train(s, a);
  }
  if (s.attention == "mikan") {
    using source = nn::copula_points<float>;
    std::vector<nn::multihead_attention<float, yaglom, ika::lp, source, ika::grouped_heads, Engine>> a;
    for (index_t l = 0; l < s.layers; ++l)
      a.emplace_back(config(l), yaglom{}, ika::lp{s.p},
                     source({s.heads, D, s.M}, s.heads, nn::derive_seed(s.seed, 50 + std::uint64_t(l))));
    return train(s, a);
  }
  std::fprintf(stderr, "fashion_mnist: unknown --attention '%s' (softmax, rbf-lp, ikan-direct, ika, mikan)\n",
               s.attention.c_str());
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  ika_examples::options o("fashion_mnist", "a small vision Transformer on Fashion-MNIST with a choice of attention");
  o.add("attention", "ikan-direct", "softmax | rbf-lp | ikan-direct | ika | mikan");
  o.add("p", "3", "the Lp magnitude's p (not used by softmax)");
  o.add("M", "32", "spectral points per head (ikan-direct, ika, mikan)");
  o.add("heads", "4", "attention heads");
  o.add("layers", "2", "encoder layers");
  o.add("d-model", "64", "model width");
  o.add("ff", "128", "feed-forward width");
  o.add("patch", "4", "patch side (divides 28)");
  o.add("epochs", "10", "training epochs");
  o.add("batch", "128", "batch size");
  o.add("augment", "none", "training augmentation: none | flip | flip-shift (mirror, +-1 pixel shift); flip cost 0.3 points at 10 epochs");
  o.add("lr", "0.002", "peak learning rate (AdamW, warm-up then cosine)");
  o.add("weight-decay", "0.05", "AdamW weight decay");
  o.add("dropout", "0", "dropout in the encoder layers");
  o.add("seed", "1", "seed of every random draw");
  o.add("threads", "0", "OpenMP threads (0: all cores)");
  o.add("device", "cpu", "where the attention runs: cpu | cuda (fashion_mnist_cuda only; the rest of the model stays on the CPU)");
  o.add("train-limit", "0", "use only the first N training images (0: all)");
  o.add("test-limit", "0", "use only the first N test images (0: all)");
  o.add("data", "/usr/share/datasets/fashion-mnist", "directory of the IDX files (Fashion-MNIST or MNIST)");
  o.add("out", "results/fashion_mnist", "output directory");
  try {
    if (!o.parse(argc, argv)) return 0;
    settings s;
    s.attention = o.text("attention");
    s.p = o.real("p");
    s.M = o.integer("M");
    s.heads = o.integer("heads");
    s.layers = o.integer("layers");
    s.d_model = o.integer("d-model");
    s.ff = o.integer("ff");
    s.patch = o.integer("patch");
    s.epochs = int(o.integer("epochs"));
    s.batch = o.integer("batch");
    s.augment = o.text("augment");
    s.lr = o.real("lr");
    s.weight_decay = o.real("weight-decay");
    s.dropout = o.real("dropout");
    s.seed = std::uint64_t(o.integer("seed"));
    s.train_limit = o.integer("train-limit");
    s.test_limit = o.integer("test-limit");
    s.data_dir = o.text("data");
    s.out_dir = o.text("out");
    if (s.layers < 1 || s.epochs < 1 || s.batch < 1 || s.heads < 1 || s.d_model % s.heads != 0 || 28 % s.patch != 0)
      throw std::invalid_argument("need layers, epochs, batch >= 1, d-model divisible by heads, patch dividing 28");
    if (const long threads = o.integer("threads"); threads > 0) omp_set_num_threads(int(threads));
    const std::string device = o.text("device");
    if (device == "cuda") {
#if defined(IKA_EXAMPLE_CUDA)
      return dispatch<ika::cuda::attention_engine>(s);
#else
      throw std::invalid_argument("--device cuda: this build has no CUDA; configure with -DIKA_CUDA=ON and run "
                                  "fashion_mnist_cuda");
#endif
    }
    if (device != "cpu") throw std::invalid_argument("--device: cpu or cuda, got '" + device + "'");
    return dispatch<ika::ad::cpu_attention_engine>(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
}
