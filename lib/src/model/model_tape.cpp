// Keras's train_step with a GradientTape, over the course's kernels (chapter 13).
#include <cmath>

#include "nn/error.hpp"
#include "nn/model.hpp"
#include "nn/optimizer.hpp"
#include "nn/softmax.hpp"
#include "nn/tape.hpp"

namespace nn {

double tape_gradients(Sequential& model, const Tensor& x, const Tensor& y, std::size_t* correct) {
  if (model.loss() != Loss::categorical_crossentropy)
    throw Error("the gradient tape knows one loss, categorical_crossentropy; compile with it");
  // [snippet tape-gradients]
  Tape tape;                                                          // with tf.GradientTape() as tape:
  const Var logits = model.record(tape.input(x), /*training=*/true);  //   y_pred = self(x, training=True)
  const Var loss = softmax_crossentropy(logits, y);                   //   loss = self.compute_loss(y=y, y_pred=y_pred)
  if (std::isfinite(loss.item())) tape.backward(loss);               // grads = tape.gradient(loss, trainable_vars)
  // [end snippet tape-gradients]
  if (correct) *correct = correct_count(probabilities(loss), y);
  return loss.item();
}

double tape_train_step(Sequential& model, const Tensor& x, const Tensor& y, std::size_t* correct) {
  const double loss = tape_gradients(model, x, y, correct);
  if (std::isfinite(loss)) model.optimizer().step(model.parameters());  // optimizer.apply_gradients(zip(grads, vars))
  return loss;
}

}  // namespace nn
