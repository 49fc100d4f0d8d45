// The playground's C API: the course's trained model, compiled to WebAssembly,
// as a handful of functions a page calls (docs/playground/README.md lists them).
//
//   pg_load_weights("/weights")        the folder Sequential::save wrote, copied
//                                      into the module's file system by the page
//   pg_input()                         784 bytes to fill: one 28x28 image, 0..255
//   pg_drawing(w, h), pg_input_from_drawing()
//                                      or a drawing of any size, prepared into
//                                      pg_input the way MNIST's digits were
//                                      (nn::prepare_like_mnist)
//   pg_predict(1)                      forward; then read the buffers below
//                                      (pg_predict(0): the probabilities only)
//   pg_probabilities()                 (10,)            softmax, as model.predict
//   pg_conv_relu()                     (26, 26, 32)     Conv2D's output, after ReLU
//   pg_pooled()                        (13, 13, 32)     MaxPooling2D's output
//   pg_dense()                         (100,)           Dense(100, relu)'s output
//   pg_last_error()                    why the last call returned nonzero
//
// Nothing here computes a layer: the model is nn::make_mnist_model, loaded by
// Sequential::load (which checks the manifest, every shape and every value),
// and run by the layers' own forward.
#include <emscripten/emscripten.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nn/error.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/parallel.hpp"
#include "nn/pgm.hpp"

namespace {

struct Playground {
  std::optional<nn::Sequential> model;
  std::uint8_t input[28 * 28] = {};
  std::vector<std::uint8_t> drawing;  // (drawing.size() / drawing_width, drawing_width), 0..255
  std::size_t drawing_width = 0;
  nn::Tensor x{{1, 28, 28, 1}};  // (1, 28, 28, 1), the image scaled to 0..1
  nn::Tensor probabilities{{1, 10}};
  nn::Tensor conv_relu{{1, 26, 26, 32}};
  nn::Tensor pooled{{1, 13, 13, 32}};
  nn::Tensor dense{{1, 100}};
  std::string error;
};

Playground& playground() {
  static Playground p;
  return p;
}

// Runs f; an exception becomes a nonzero return and the message pg_last_error gives.
template <class F>
int guarded(F f) {
  Playground& p = playground();
  p.error.clear();
  try {
    f(p);
    return 0;
  } catch (const std::exception& e) {
    p.error = e.what();
  } catch (...) {
    p.error = "unknown error";
  }
  return 1;
}

void copy_into(nn::Tensor& to, const nn::Tensor& from) {
  std::copy(from.data(), from.data() + from.size(), to.data());
}

}  // namespace

extern "C" {

// Loads the six weight tensors from `dir`. On failure the previous model (if
// any) stays and pg_last_error says which file and why.
EMSCRIPTEN_KEEPALIVE int pg_load_weights(const char* dir) {
  return guarded([&](Playground& p) {
    // No threads in the browser build (wasm/dependencies.cmake): the pool stays one thread.
    nn::set_thread_count(1);
    nn::Sequential model = nn::make_mnist_model(0);
    model.load(dir);
    p.model.emplace(std::move(model));
  });
}

EMSCRIPTEN_KEEPALIVE std::uint8_t* pg_input() { return playground().input; }

// Room for a width x height drawing (white ink on black, 0..255), to fill.
// Null when the size is not positive (pg_last_error says so).
EMSCRIPTEN_KEEPALIVE std::uint8_t* pg_drawing(int width, int height) {
  std::uint8_t* room = nullptr;
  guarded([&](Playground& p) {
    if (width <= 0 || height <= 0 || width > 4096 || height > 4096)
      throw nn::Error("pg_drawing: a drawing is 1x1 to 4096x4096 pixels");
    p.drawing_width = static_cast<std::size_t>(width);
    p.drawing.resize(p.drawing_width * static_cast<std::size_t>(height));  // the page writes every pixel
    room = p.drawing.data();
  });
  return room;
}

// pg_drawing's drawing prepared into pg_input like an MNIST digit: 1 when it
// was, 0 when the drawing has no ink (pg_input unchanged), -1 on error.
EMSCRIPTEN_KEEPALIVE int pg_input_from_drawing() {
  int result = -1;
  guarded([&](Playground& p) {
    const std::vector<std::uint8_t> digit = nn::prepare_like_mnist(p.drawing, p.drawing_width,
                                                                        p.drawing.size() / p.drawing_width);
    if (!digit.empty()) std::copy(digit.begin(), digit.end(), p.input);
    result = digit.empty() ? 0 : 1;
  });
  return result;
}

// One forward pass of pg_input()'s image. The probabilities come from
// model.predict, as ch11-predict computes them; the activations from the
// layers run one by one (predict fuses Conv2D and MaxPooling2D into one step
// that never writes the convolution's output).
EMSCRIPTEN_KEEPALIVE int pg_predict(int with_activations) {
  return guarded([&](Playground& p) {
    if (!p.model) throw nn::Error("no weights loaded: call pg_load_weights first");
    nn::normalize_streaming(p.input, p.x.span());  // 0..255 -> 0..1, as images_to_tensor
    copy_into(p.probabilities, p.model->predict(p.x));  // (1, 10)
    if (!with_activations) return;
    // predict has just set every layer's training flag to false (Keras's training=False).
    const auto& layers = p.model->layers();  // conv2d, max_pooling2d, flatten, dense, dense_1
    const nn::ConstView conv = layers[0]->forward(p.x);    // (1, 26, 26, 32)
    copy_into(p.conv_relu, conv);
    const nn::ConstView pool = layers[1]->forward(conv);   // (1, 13, 13, 32)
    copy_into(p.pooled, pool);
    const nn::ConstView flat = layers[2]->forward(pool);   // (1, 5408)
    copy_into(p.dense, layers[3]->forward(flat));          // (1, 100)
  });
}

EMSCRIPTEN_KEEPALIVE const float* pg_probabilities() { return playground().probabilities.data(); }
EMSCRIPTEN_KEEPALIVE const float* pg_conv_relu() { return playground().conv_relu.data(); }
EMSCRIPTEN_KEEPALIVE const float* pg_pooled() { return playground().pooled.data(); }
EMSCRIPTEN_KEEPALIVE const float* pg_dense() { return playground().dense.data(); }
EMSCRIPTEN_KEEPALIVE const char* pg_last_error() { return playground().error.c_str(); }

}  // extern "C"
