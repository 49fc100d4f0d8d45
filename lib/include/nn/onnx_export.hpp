#pragma once
// The trained model as an ONNX file (chapter 11's last section): the exchange
// format that ONNX Runtime, and the runtimes of phones and browsers, read.
// Keras 3 does the same with model.export(path, format="onnx").
//
//   nn::export_onnx(model, "mnist.onnx");
//
// The graph takes Keras's input, "input" of shape (N, 28, 28, 1), channels
// last (NHWC), and gives "probabilities" (N, 10). ONNX's Conv and MaxPool
// work on channels first (NCHW), so the graph says so: a Transpose to NCHW
// before the first convolution, one back to NHWC before Flatten (so that the
// 5,408 features come in Keras's order and the Dense kernel is used as it
// is), and each Conv2D kernel stored as (C_out, C_in, KH, KW). The layers
// become Conv, Relu, MaxPool, BatchNormalization, Flatten and Gemm, and the
// model's softmax a Softmax; Dropout and RandomTranslation, identities outside
// training, become nothing.
//
// Written with the ONNX project's own protobuf classes (Debian's
// libonnx-dev) and checked by ONNX's checker before the file is written,
// whole or not at all (nn::write_file_atomic). Part of nn_onnx, the library
// the course builds with libonnx-dev; the core library nn links no protobuf.
#include <filesystem>
#include <string>

#include "nn/model.hpp"

namespace nn {

// The graph's opset: ONNX's operator set 13 (Softmax over one axis, as
// Keras's), which ONNX Runtime 1.x runs.
constexpr int kOnnxOpset = 13;

// The model as a serialized ONNX ModelProto, checked by onnx::checker.
// Throws nn::Error naming the layer for one with no ONNX form here (a
// TapeLayer, or a layer of your own), and for a model that is not for
// (28, 28, 1)-like images (H, W, C) or flat inputs.
std::string onnx_model_bytes(Sequential& model);
// The same, written to `file` whole or not at all; throws nn::Error naming
// the file when it cannot be written.
void export_onnx(Sequential& model, const std::filesystem::path& file);

}  // namespace nn
