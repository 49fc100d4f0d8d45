#pragma once
// Sequential, compile, fit, evaluate, predict: the Keras model. It takes any
// nn::Layer (nn/layer.hpp): the course's (nn/layers.hpp), or one of your own.
// It knows them only through that interface.
//
//   #include "nn/layers.hpp"
//   nn::Sequential model({28, 28, 1});
//   model.add(nn::Conv2D({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = s}));
//   model.add(nn::MaxPooling2D({.pool = 2}));
//   model.add(nn::Flatten());
//   model.add(nn::Dense({.units = 100, .activation = nn::Activation::relu, .seed = s + 1}));  // input: 5408, from Flatten
//   model.add(nn::Dense({.units = 10, .seed = s + 2}));   // softmax: see compile
//   model.compile(nn::make_optimizer("sgd", 0.01f));
//   model.fit(x_train, y_train, {.epochs = 10, .batch_size = 32});
//
// The last Dense produces logits; softmax and categorical cross-entropy are
// applied together by the loss (chapter 08), as Keras's
// Dense(10, activation="softmax") + loss="categorical_crossentropy" does.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <concepts>

#include "nn/layer.hpp"
#include "nn/optimizer.hpp"
#include "nn/tensor.hpp"

namespace nn {

struct EpochLog {
  double loss = 0, accuracy = 0;          // the running means at the end of the epoch
  double val_loss = 0, val_accuracy = 0;  // on the validation data, when given
  bool has_validation = false;
  double seconds = 0;
  std::size_t steps = 0;
};

struct History {
  std::vector<EpochLog> epochs;
  std::size_t steps = 0;      // batches trained in all
  std::string stopped;        // why fit stopped early ("" when it ran to the end)
  bool nan_loss = false;      // stopped because the loss was NaN or inf
  bool interrupted = false;   // stopped by the interrupt flag
  // After a NaN loss or an interrupt the model holds the weights of the end of
  // the last completed epoch (or the initial ones): the last good weights.
};

struct FitOptions {
  int epochs = 10;
  std::size_t batch_size = 32;
  bool shuffle = true;
  std::uint64_t seed = 0;                   // for the shuffles
  std::int64_t max_steps = -1;              // stop after this many batches; < 0: no limit
  std::ostream* progress = nullptr;         // Keras's progress lines; null: silent
  bool live = false;                        // redraw the progress line as it goes (a terminal)
  const Tensor* x_val = nullptr;            // evaluated after every epoch when given
  const Tensor* y_val = nullptr;
  // Keras's validation_split: hold out the last fraction of x and y, taken
  // before any shuffling, as the validation data (see split_for_validation);
  // only the rest is trained on and shuffled. 0: no split. In [0, 1); not
  // together with x_val (Keras would silently ignore the split).
  double validation_split = 0.0;
  const std::atomic<bool>* interrupt = nullptr;  // checked before every batch
  // Called after every completed epoch (after validation), e.g. to save weights.
  std::function<void(int epoch, const EpochLog&)> on_epoch_end = nullptr;
  // Called after every trained batch with the number of batches trained so far.
  std::function<void(std::size_t steps)> on_batch_end = nullptr;
  // Keras's overridden Model.train_step: when given, fit calls it for every
  // batch instead of train_on_batch. It trains on (x, y), returns the batch's
  // mean loss and stores in *correct how many argmax predictions matched
  // (chapter 13 gives one that finds the gradients with a tape).
  std::function<double(const Tensor& x, const Tensor& y, std::size_t* correct)> train_step = nullptr;
};

// The losses compile takes, by Keras's names. Both apply the softmax to the
// last layer's logits first (nn/softmax.hpp): categorical_crossentropy is the
// Keras program's; mean_squared_error is chapter 10's experiment on why not.
enum class Loss { categorical_crossentropy, mean_squared_error };
// "categorical_crossentropy", or "mean_squared_error" (also "mse", Keras's
// alias); anything else throws nn::Error listing them.
Loss loss_from_name(std::string_view name);
std::string_view loss_name(Loss loss);  // Keras's name

// What one batch does to each step of the plan (Sequential::spread): the
// signal's spread going forward and the gradient's coming back.
struct StepSpread {
  std::string name;            // "input", then the plan's steps: "conv2d", ...
  double activation_std = 0;   // of the step's output over the batch: all samples, all units
  double gradient_std = 0;     // of d loss / d (that output); NaN where backward does not reach
};

struct Evaluation {
  double loss = 0, accuracy = 0;
};

// A parameter with its full name, the layer's name in front: "conv2d.kernel".
struct NamedParameter {
  std::string name;
  Parameter* parameter;
};

class Sequential {
 public:
  // The shape of one sample, without the batch axis: (28, 28, 1).
  explicit Sequential(Shape input_shape);
  const Shape& input_shape() const { return input_shape_; }  // of one sample

  // Appends a layer: builds it for the previous layer's output shape
  // (Layer::build, e.g. Dense's kernel for the input width), checks that it
  // takes that shape, and names it as Keras does ("dense", then "dense_1", ...).
  void add(std::unique_ptr<Layer> layer);
  template <std::derived_from<Layer> L>
  void add(L layer) { add(std::make_unique<L>(std::move(layer))); }  // model.add(nn::Flatten())

  // The loss is categorical cross-entropy on softmax(last layer), the metric
  // accuracy: the ones the Keras program compiles with (or `loss`, on the same
  // softmax). Also builds the execution plan (see set_fusion).
  void compile(std::unique_ptr<Optimizer> optimizer, Loss loss = Loss::categorical_crossentropy);
  Loss loss() const { return loss_; }
  // The optimizer compile() was given; throws nn::Error before compile().
  Optimizer& optimizer();

  // Keras's model.summary() table.
  std::string summary() const;
  std::size_t param_count() const;            // every weight, trainable or not: "Total params"
  std::size_t trainable_param_count() const;  // those the optimizer trains: "Trainable params"

  // Forward, loss, backward and one optimizer step on one batch. Returns the
  // batch's mean loss; `correct` receives how many argmax predictions matched.
  // A loss that is not finite gives no step. Each layer updates its weights
  // during the backward pass (Layer::backward_and_update), once the layers
  // behind it no longer need them, so the parameters' `grad` may be left
  // unwritten: call compute_gradients for gradients.
  double train_on_batch(const Tensor& x, const Tensor& y, std::size_t* correct = nullptr);

  // The loss and the gradients of every parameter on one batch, no update
  // (for gradient checks, and for a step whose update comes later, as in
  // data-parallel training). Returns the loss; `correct` receives how many
  // argmax predictions matched.
  double compute_gradients(const Tensor& x, const Tensor& y, std::size_t* correct = nullptr);

  // Forward and backward on one batch, no update (compute_gradients' passes,
  // in training mode): the standard deviation of the input, of every plan
  // step's output and of the loss's gradient with respect to it (Glorot's
  // argument is that both stay about the same from layer to layer at
  // initialization; chapter 10's --init-spread). Turn fusion off first to see
  // a convolution's output before its pooling.
  std::vector<StepSpread> spread(const Tensor& x, const Tensor& y);

  History fit(const Tensor& x, const Tensor& y, const FitOptions& options);
  // The forward pass to the logits recorded on x's gradient tape (nn/tape.hpp,
  // chapter 13): every layer's Layer::record in order, each layer's
  // `training` set first, as forward sets it. The layers' own values,
  // computed unfused (the tape has no fused convolution and pooling).
  Var record(Var x, bool training);
  // Forward passes in training mode over x, `batch_size` images at a time
  // (whole batches only), with no backward pass and no update: no weight
  // changes, and what layers keep of their inputs' statistics
  // (BatchNormalization's moving mean and variance) moves toward the
  // statistics the present weights give. After fit, the moving averages still
  // hold batches from weights that have since moved; this re-estimates them.
  void update_statistics(const Tensor& x, std::size_t batch_size = 32);
  Evaluation evaluate(const Tensor& x, const Tensor& y, std::size_t batch_size = 32,
                      std::ostream* progress = nullptr) ;
  // softmax probabilities, (N, classes)
  Tensor predict(const Tensor& x, std::size_t batch_size = 32);

  // The execution plan: what forward and backward run. By default it is the
  // layers, with every layer that declares itself a ReLU convolution
  // (Layer::fusion_role: Conv2D(activation="relu")) directly followed by one
  // that declares a max pooling (MaxPooling2D) replaced by one fused step
  // (nn/fused.hpp) that computes the same values without writing the
  // convolution's output to memory. The fused step owns nothing: it uses the
  // convolution's parameters. With
  // fusion off, every layer runs on its own, as the chapters present them.
  void set_fusion(bool on);
  // The plan's steps by name, e.g. {"conv2d+max_pooling2d", "flatten", "dense", "dense_1"}.
  std::vector<std::string> plan();

  // Every parameter with its full name, in layer order: conv2d.kernel,
  // conv2d.bias, dense.kernel, ... The optimizer, save and load walk this list.
  std::vector<NamedParameter> named_parameters();
  std::vector<Parameter*> parameters();
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

  // One .npy file per weight tensor in `dir` ("conv2d.kernel.npy", ...) and
  // a manifest.txt (each file's size and CRC32, and `epoch`), saved as one
  // set: a failed or killed save leaves the previous set whole. load()
  // refuses a folder whose files do not match its manifest (a mix of two
  // saves), a wrong shape, or a NaN or infinite weight, naming the file, and
  // then leaves the model unchanged; it returns the saved epoch.
  void save(const std::filesystem::path& dir, int epoch = 0);
  int load(const std::filesystem::path& dir);

 private:
  // Forward through every step of the plan, with every layer's `training`
  // set first: true for a training step, false for evaluate and predict.
  ConstView logits(const Tensor& x, bool training);
  // Forward, loss and backward; with `update`, a training step: the
  // optimizer's step is begun and every layer updates its weights in its
  // backward pass. Returns the loss (no backward pass from a loss that is
  // not finite when updating).
  // `gradients`, when given, receives the gradient reaching each plan step
  // (d loss / d its output), the last step's first, down to the first
  // trainable step.
  double backprop(const Tensor& x, const Tensor& y, Optimizer* update, std::vector<ConstView>* gradients = nullptr);
  // The compiled loss of a batch from its logits z and p = softmax(z).
  double batch_loss(const Tensor& z, const Tensor& p, const Tensor& y) const;
  void check_data(const char* what, const Tensor& x, const Tensor* y) const;
  // The last layer's output shape for a batch of `batch` samples (the input
  // shape itself when there are no layers yet).
  Shape output_shape(std::size_t batch) const;
  const std::vector<Layer*>& execution_plan();  // built when first needed after a change
  Shape input_shape_;
  std::vector<std::unique_ptr<Layer>> layers_;
  // What forward and backward run: the layers, with fused pairs replaced by
  // one step each (owned by fused_). Empty until needed.
  std::vector<Layer*> plan_;
  std::size_t first_trainable_ = 0;  // the first step of plan_ with trainable weights (plan_.size(): none)
  std::vector<std::unique_ptr<Layer>> fused_;
  bool fusion_ = true;
  std::vector<ConstView> activations_;  // the last forward pass: the input of plan step i is activations_[i]
  std::unique_ptr<Optimizer> optimizer_;
  Loss loss_ = Loss::categorical_crossentropy;
  std::size_t last_correct_ = 0;  // argmax matches in the last compute_gradients
  Tensor p_, dz_;                 // softmax output and its gradient, reused every batch
};

// Keras's train_step written with a GradientTape (chapter 13), for
// FitOptions::train_step: the forward pass recorded on a tape
// (Sequential::record), the compiled loss, the tape's backward pass, and the
// optimizer's step over every parameter. The same arithmetic as
// train_on_batch with fusion off (set_fusion(false)), so the same weights bit
// for bit; with fusion on, the convolution's gradient is summed in another
// order. Only the categorical cross-entropy loss: other losses throw nn::Error.
double tape_train_step(Sequential& model, const Tensor& x, const Tensor& y, std::size_t* correct = nullptr);
// Its first half: the loss, and every parameter's gradient in its `grad`,
// found by the tape (compute_gradients' results). No step is taken.
double tape_gradients(Sequential& model, const Tensor& x, const Tensor& y, std::size_t* correct = nullptr);

// Batches in one epoch: the last one may be partial. 60000 / 32 -> 1875.
constexpr std::size_t batches_per_epoch(std::size_t samples, std::size_t batch_size) {
  return (samples + batch_size - 1) / batch_size;
}

// Keras's validation_split on n samples: the first floor(n * (1 - fraction))
// train and the rest validate, as keras/src/trainers/data_adapters/
// array_slicing.py's train_validation_split cuts them. Returns the number that
// train; throws nn::Error for a fraction outside [0, 1) or a cut that leaves
// either part empty. 60000 and 0.1 -> 54000 (the last 6000 validate).
std::size_t split_for_validation(std::size_t n, double validation_split);

// Keras's progress line: "1875/1875 [==============================] - 6s 3ms/step - loss: 0.2763 - accuracy: 0.9190"
// (with "ETA: 5s" instead of the times while the epoch runs).
std::string progress_line(std::size_t done, std::size_t total, double elapsed_seconds, double loss,
                          double accuracy, bool finished);

// The Keras program's model (Conv2D(32, 3x3, relu), MaxPooling2D(2), Flatten,
// Dense(100, relu), Dense(10) + softmax), its layers seeded from `seed`.
// `init_scale` multiplies every kernel's glorot_uniform limit (nn/init.hpp):
// 1 is Keras's initialization; chapter 10's --init-scale tries others.
Sequential make_mnist_model(std::uint64_t seed, float init_scale = 1.0f);

}  // namespace nn
