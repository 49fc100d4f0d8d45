// Reference fixtures from TensorFlow.js's layers API for keras.io's "Simple
// MNIST convnet" (chapter 12): a Conv2D with 32 input channels and a Dropout.
//
//   tools/keras-reference/run convnet-fixtures.mjs [--data DIR] [--out DIR]
//
// On the first 32 training images, with weights from the same formula as
// fixtures.mjs (common.mjs: formulaWeights), it dumps into
// tests/fixtures/keras-reference/convnet/: every layer's output in inference
// mode (model.predict: the Dropout is the identity), and the loss and every
// weight's gradient of the same model without its Dropout layer (in training
// Dropout(0.5) draws a random mask, which the two sides cannot share; in
// inference it is the identity, so this is also the full model's loss). See
// the folder's README.md, which this script writes.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  initTf, tf, buildConvnet, getWeights, setWeights, kConvnetWeightNames, kConvnetWeightShapes, loadMnist,
  formatBytes, commandLineOption, formulaWeights, makeDumper, folderBytes,
} from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.resolve(commandLineOption('--data', path.join(here, '../../data/mnist')));
const outDir = path.resolve(commandLineOption('--out', path.join(here, '../../tests/fixtures/keras-reference/convnet')));
const kBatch = 32;
// A tensor with more elements than kWholeLimit is dumped as three summaries.
// 16384, not fixtures.mjs's 4096, so that dense.kernel.grad (1600, 10) is
// stored whole: its sums over the last axis vanish in exact arithmetic (each
// row is x_i * sum_c (p_c - y_c) = 0, the probabilities and the one-hot labels
// both summing to 1), so they hold only rounding noise, which no tolerance
// relative to them can compare. The samples of the larger tensors take every
// 97th element, not every 31st, to stay under 300 KiB.
const kWholeLimit = 16384;
const kEvery = 97;

await initTf();
const tfjsVersion = tf.version.tfjs;

// (fan_in, fan_out) per layer, as Keras's glorot_uniform computes them:
// a (3, 3, C_in, C_out) kernel has fan_in 9 * C_in and fan_out 9 * C_out.
const kFans = { conv2d: [9, 288], conv2d_1: [288, 576], dense: [1600, 10] };
const kWeightLayers = ['conv2d', 'conv2d_1', 'dense'];
const initial = formulaWeights(kConvnetWeightNames, kConvnetWeightShapes, kFans);

const { dump, written } = makeDumper(outDir, { wholeLimit: kWholeLimit, every: kEvery });

// ---- The batch --------------------------------------------------------------------
const mnist = loadMnist(dataDir, 'train', kBatch);
if (mnist.count < kBatch) throw new Error(`${dataDir}: only ${mnist.count} training images`);
const x = tf.tensor4d(mnist.x, [kBatch, 28, 28, 1], 'float32');
const y = tf.tensor2d(mnist.y, [kBatch, 10], 'float32');

dump('conv2d_1.kernel.initial', initial['conv2d_1.kernel'].shape, initial['conv2d_1.kernel'].data);

// ---- Forward in inference mode: every layer's output ------------------------------------
// Dropout.call in tfjs-layers/dist/layers/core.js returns its input unless
// training is true (K.inTrainPhase(dropout, () => input, training), training
// defaulting to false), and predict runs with training false, as Keras's
// Dropout (keras/src/layers/regularization/dropout.py: `if training and self.rate > 0`).
const model = buildConvnet();
setWeights(model, initial, kWeightLayers);
for (const [name, w] of Object.entries(getWeights(model, kWeightLayers)))
  if (!w.data.every((v, i) => Object.is(v, initial[name].data[i]))) throw new Error(`${name}: setWeights changed the values`);

const layerNames = model.layers.map((l) => l.name);
const expected = ['conv2d', 'max_pooling2d', 'conv2d_1', 'max_pooling2d_1', 'flatten', 'dropout', 'dense'];
if (layerNames.join() !== expected.join()) throw new Error(`layers ${layerNames}, expected ${expected}`);
if (model.countParams() !== 34826) throw new Error(`${model.countParams()} parameters, keras.io's model has 34,826`);
const probe = tf.model({ inputs: model.inputs, outputs: layerNames.map((n) => model.getLayer(n).output) });
const outputs = probe.predict(x, { batchSize: kBatch });
layerNames.forEach((n, i) => dump(`${n}.output`, outputs[i].shape, outputs[i].dataSync()));

// ---- The loss and the gradients, without the Dropout ---------------------------------------
const plain = buildConvnet({ dropout: false });
setWeights(plain, initial, kWeightLayers);
plain.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
const lossFunction = plain.model.lossFunctions[0];  // as fixtures.mjs: tfc.mean(lossFunction(targets, outputs))
const lossOf = () => tf.mean(lossFunction(y, plain.apply(x, { training: true })));
const variables = plain.trainableWeights.map((w) => w.read());
const { value: lossValue, grads } = tf.variableGrads(lossOf, variables);
dump('loss', [1], lossValue.dataSync());
const gradients = {};
for (const [variable, g] of Object.entries(grads)) {
  const w = plain.trainableWeights.find((tw) => tw.read().name === variable);
  const [layer, kind] = w.originalName.split('/');  // e.g. "conv2d_1/kernel"
  gradients[`${layer}.${kind}`] = { shape: g.shape, data: g.dataSync() };
}
for (const name of kConvnetWeightNames) dump(`${name}.grad`, gradients[name].shape, gradients[name].data);

// ---- README and size ------------------------------------------------------------------------
const readme = `# Keras reference fixtures: keras.io's Simple MNIST convnet (TensorFlow.js ${tfjsVersion}, cpu backend)

Written by \`tools/keras-reference/convnet-fixtures.mjs\`; regenerate with

    tools/keras-reference/run convnet-fixtures.mjs

(it reads the first ${kBatch} images of \`data/mnist/train-images-idx3-ubyte\` and their labels). Read by
\`KerasReference.Convnet*\` in \`tests/keras_reference_test.cpp\`. What they add to the fixtures of the folder
above: a Conv2D with 32 input channels (its input gradient, too) and a Dropout in inference mode.

## The batch and the model

- x: the first ${kBatch} training images, \`float(pixel) / 255.0f\`, shape (${kBatch}, 28, 28, 1); y: their labels
  one-hot, (${kBatch}, 10).
- keras.io/examples/vision/mnist_convnet: Conv2D(32, 3x3, relu) \`conv2d\` -> MaxPooling2D(2) \`max_pooling2d\` ->
  Conv2D(64, 3x3, relu) \`conv2d_1\` -> MaxPooling2D(2) \`max_pooling2d_1\` -> Flatten \`flatten\` ->
  Dropout(0.5) \`dropout\` -> Dense(10, softmax) \`dense\`; 34,826 parameters; categorical cross-entropy.
- The weights: the formula of the folder above (its README), with t = 1 to 6 for ${kConvnetWeightNames.map((n) => `\`${n}\``).join(', ')}
  and (fan_in, fan_out) = (9, 288) for conv2d, (288, 576) for conv2d_1, (1600, 10) for dense.

## The files

| name | what |
|---|---|
| ${expected.map((n) => `\`${n}.output\``).join(', ')} | each layer's output in inference mode (\`model.predict\`): \`dropout.output\` equals \`flatten.output\`; \`dense.output\` holds the softmax probabilities |
| \`loss\` | shape (1,): the batch mean categorical cross-entropy of the model **without** its Dropout layer, in training (the full model's, too, in inference) |
| \`<weight>.grad\` | the gradient of that loss for each of the six weights (tf.variableGrads), without the Dropout: in training it draws a random mask |
| \`conv2d_1.kernel.initial\` | the formula's conv2d_1.kernel, to check that both sides compute the same formula |

The size rule is the folder above's with two changes, to keep the folder under 300 KiB while every weight
gradient but conv2d_1's is stored whole: a tensor with up to ${kWholeLimit} elements (not 4096) is stored whole,
and a larger one keeps every **${kEvery}th** element (\`NAME.every${kEvery}.npy\`, not every 31st) with its two
sums (\`NAME.sum_last.npy\`, \`NAME.sum_rest.npy\`). \`dense.kernel.grad\` must be whole: its sums over the
last axis are zero in exact arithmetic (each row is x_i times the sum over the classes of p - y, and the
probabilities and the one-hot labels both sum to 1), so the summary would hold only rounding noise.
`;
fs.writeFileSync(path.join(outDir, 'README.md'), readme);

const total = folderBytes(outDir);
console.log(`${written.length} .npy files and README.md in ${path.relative(process.cwd(), outDir) || '.'}: ${total} bytes (${formatBytes(total)})`);
console.log(`loss ${lossValue.dataSync()[0]} (tfjs ${tfjsVersion}, backend ${tf.getBackend()})`);
if (total >= 300 * 1024) throw new Error('the convnet fixtures are not under 300 KiB');
