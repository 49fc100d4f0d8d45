// The model as an ONNX graph, with the ONNX project's protobuf classes.
#include "nn/onnx_export.hpp"

#include <onnx/checker.h>
#include <onnx/onnx-ml.pb.h>

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/layers.hpp"

namespace nn {

namespace {

// Builds the graph one node at a time; each node's output is the next one's input.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  // Appends node `op` on the current value (and any initializers named in
  // `more`), returning the name of its output, which becomes the current value.
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& more = {}) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    const std::string out = fmt::format("{}_{}", op, ++count_);
    n->set_name(out);
    n->add_input(current_);
    for (const std::string& m : more) n->add_input(m);
    n->add_output(out);
    current_ = out;
    return n;
  }
  // A float tensor stored in the file (a weight), named `name`.
  std::string initializer(const std::string& name, const std::vector<std::int64_t>& dims, const float* data,
                          std::size_t n) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : dims) t->add_dims(d);
    t->mutable_float_data()->Add(data, data + n);
    return name;
  }
  void set_current(const std::string& name) { current_ = name; }
  const std::string& current() const { return current_; }

 private:
  onnx::GraphProto* graph_;
  std::string current_;
  int count_ = 0;
};

void add_ints(onnx::NodeProto* n, const std::string& name, const std::vector<std::int64_t>& values) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (std::int64_t v : values) a->add_ints(v);
}

void add_int(onnx::NodeProto* n, const std::string& name, std::int64_t value) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void add_float(onnx::NodeProto* n, const std::string& name, float value) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void set_shape(onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::int64_t>& dims) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("N");  // any batch size
  for (std::int64_t d : dims) s->add_dim()->set_dim_value(d);
}

}  // namespace

std::string onnx_model_bytes(Sequential& model) {
  const Shape& in = model.input_shape();
  onnx::ModelProto proto;
  proto.set_ir_version(onnx::IR_VERSION);
  proto.set_producer_name("Line by Line (nn)");
  proto.add_opset_import()->set_version(kOnnxOpset);  // the default domain, ai.onnx
  onnx::GraphProto* graph = proto.mutable_graph();
  graph->set_name("sequential");
  std::vector<std::int64_t> input_dims;
  for (std::size_t i = 0; i < in.rank(); ++i) input_dims.push_back(static_cast<std::int64_t>(in[i]));
  set_shape(graph->add_input(), "input", input_dims);

  GraphBuilder g(graph);
  g.set_current("input");
  // Where the channels are: the input is NHWC, as in Keras; Conv and MaxPool want NCHW.
  bool channels_first = false;
  bool flat = in.rank() == 1;  // (N, features): after Flatten, or a flat input
  const auto to_channels_first = [&] {
    if (channels_first) return;
    add_ints(g.node("Transpose"), "perm", {0, 3, 1, 2});  // NHWC -> NCHW
    channels_first = true;
  };
  // [snippet onnx-layers]
  for (const auto& layer : model.layers()) {
    const std::string& name = layer->name;
    if (auto* conv = dynamic_cast<Conv2D*>(layer.get())) {
      to_channels_first();
      const Tensor& k = conv->kernel.value;  // Keras: (KH, KW, C_in, C_out); ONNX: (C_out, C_in, KH, KW)
      const std::size_t kh = k.dim(0), kw = k.dim(1), ci = k.dim(2), co = k.dim(3);
      std::vector<float> oihw(k.size());
      for (std::size_t i = 0; i < kh; ++i)
        for (std::size_t j = 0; j < kw; ++j)
          for (std::size_t c = 0; c < ci; ++c)
            for (std::size_t o = 0; o < co; ++o) oihw[((o * ci + c) * kh + i) * kw + j] = k(i, j, c, o);
      const std::vector<std::int64_t> dims{static_cast<std::int64_t>(co), static_cast<std::int64_t>(ci),
                                           static_cast<std::int64_t>(kh), static_cast<std::int64_t>(kw)};
      const std::string w = g.initializer(name + ".kernel", dims, oihw.data(), oihw.size());
      const std::string b = g.initializer(name + ".bias", {static_cast<std::int64_t>(co)}, conv->bias.value.data(), co);
      add_ints(g.node("Conv", {w, b}), "kernel_shape", {dims[2], dims[3]});  // "valid", stride 1: the defaults
      if (conv->options().activation == Activation::relu) g.node("Relu");
    } else if (auto* pool = dynamic_cast<MaxPooling2D*>(layer.get())) {
      to_channels_first();
      const auto p = static_cast<std::int64_t>(pool->options().pool);
      onnx::NodeProto* n = g.node("MaxPool");
      add_ints(n, "kernel_shape", {p, p});
      add_ints(n, "strides", {p, p});
    } else if (dynamic_cast<Flatten*>(layer.get())) {
      if (channels_first) add_ints(g.node("Transpose"), "perm", {0, 2, 3, 1});  // back to NHWC: Keras's order
      channels_first = false;
      flat = true;
      add_int(g.node("Flatten"), "axis", 1);
    } else if (auto* dense = dynamic_cast<Dense*>(layer.get())) {
      const Tensor& w = dense->kernel.value;  // (in, out): Gemm's B as it is
      const std::string wn = g.initializer(name + ".kernel", {static_cast<std::int64_t>(w.dim(0)),
                                                              static_cast<std::int64_t>(w.dim(1))},
                                           w.data(), w.size());
      const std::string bn = g.initializer(name + ".bias", {static_cast<std::int64_t>(w.dim(1))},
                                           dense->bias.value.data(), w.dim(1));
      g.node("Gemm", {wn, bn});  // y = x W + b
      if (dense->options().activation == Activation::relu) g.node("Relu");
    } else if (auto* bn = dynamic_cast<BatchNormalization*>(layer.get())) {
      // Channels on axis 1: NCHW after a convolution, (N, C) after Flatten.
      if (!flat) to_channels_first();
      const auto c = static_cast<std::int64_t>(bn->gamma.size());
      std::vector<std::string> inputs;
      for (Parameter* p : {&bn->gamma, &bn->beta, &bn->moving_mean, &bn->moving_variance})
        inputs.push_back(g.initializer(name + "." + p->name, {c}, p->value.data(), p->size()));
      add_float(g.node("BatchNormalization", inputs), "epsilon", static_cast<float>(bn->options().epsilon));
    } else if (dynamic_cast<Dropout*>(layer.get()) || dynamic_cast<RandomTranslation*>(layer.get())) {
      continue;  // the identity outside training
    } else {
      throw Error(fmt::format("export_onnx: layer {} ({}) has no ONNX form here", name, layer->type()));
    }
  }
  // [end snippet onnx-layers]
  if (channels_first) add_ints(g.node("Transpose"), "perm", {0, 2, 3, 1});
  add_int(g.node("Softmax"), "axis", -1);  // the model's loss applies softmax to the last layer's logits
  graph->mutable_node(graph->node_size() - 1)->set_output(0, "probabilities");
  std::vector<std::size_t> batch_of_one{1};
  for (std::size_t i = 0; i < in.rank(); ++i) batch_of_one.push_back(in[i]);
  Shape out{std::span<const std::size_t>(batch_of_one)};
  for (const auto& layer : model.layers()) out = layer->output_shape(out);
  std::vector<std::int64_t> out_dims;
  for (std::size_t i = 1; i < out.rank(); ++i) out_dims.push_back(static_cast<std::int64_t>(out[i]));
  set_shape(graph->add_output(), "probabilities", out_dims);
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    throw Error(fmt::format("export_onnx: ONNX's checker refuses the graph: {}", e.what()));
  }
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) throw Error("export_onnx: the model could not be serialized");
  return bytes;
}

void export_onnx(Sequential& model, const std::filesystem::path& file) {
  const std::string bytes = onnx_model_bytes(model);
  write_file_atomic(file, std::string_view(bytes));
}

}  // namespace nn
