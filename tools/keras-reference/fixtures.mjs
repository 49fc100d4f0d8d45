// Reference fixtures from TensorFlow.js's layers API for the course's tests.
//
//   tools/keras-reference/run fixtures.mjs [--data DIR] [--out DIR]
//
// On the first 32 training images, with the weights of the formula below, it
// dumps into tests/fixtures/keras-reference/: every layer's output, the loss,
// every weight's gradient, the weights after one SGD(0.01) step and after two
// SGD(0.01, momentum 0.9) steps, and the formula's dense.kernel (to check that
// both sides compute the same formula). See the folder's README.md.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  initTf, tf, buildModel, getWeights, setWeights, kWeightNames, kWeightShapes, loadMnist, formatBytes,
  commandLineOption, formulaWeights, makeDumper, folderBytes,
} from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = commandLineOption;
const dataDir = path.resolve(option('--data', path.join(here, '../../data/mnist')));
const outDir = path.resolve(option('--out', path.join(here, '../../tests/fixtures/keras-reference')));
const kBatch = 32;
const kWholeLimit = 4096;  // a tensor with more elements is dumped as three summaries

await initTf();
const tfjsVersion = tf.version.tfjs;

// ---- The formula weights (hashUniform and formulaWeights in common.mjs) -----------
const kFans = { conv2d: [9, 288], dense: [5408, 100], dense_1: [100, 10] };
const formula = () => formulaWeights(kWeightNames, kWeightShapes, kFans);

// ---- Dumping with the size rule (makeDumper in common.mjs) -------------------------
const { dump, written } = makeDumper(outDir, { wholeLimit: kWholeLimit, every: 31 });
const dumpWeights = (suffix, weights) => {
  for (const name of kWeightNames) dump(`${name}.${suffix}`, weights[name].shape, weights[name].data);
};

// ---- The batch --------------------------------------------------------------------
const mnist = loadMnist(dataDir, 'train', kBatch);
if (mnist.count < kBatch) throw new Error(`${dataDir}: only ${mnist.count} training images`);
const x = tf.tensor4d(mnist.x, [kBatch, 28, 28, 1], 'float32');
const y = tf.tensor2d(mnist.y, [kBatch, 10], 'float32');

const initial = formula();
dump('dense.kernel.initial', initial['dense.kernel'].shape, initial['dense.kernel'].data);

// ---- Forward: every layer's output and the loss ---------------------------------------
const model = buildModel();
setWeights(model, initial);
// The same check the other way: what tfjs holds is bit for bit the formula.
for (const [name, w] of Object.entries(getWeights(model)))
  if (!w.data.every((v, i) => Object.is(v, initial[name].data[i]))) throw new Error(`${name}: setWeights changed the values`);

const layerNames = ['conv2d', 'max_pooling2d', 'flatten', 'dense', 'dense_1'];
const probe = tf.model({ inputs: model.inputs, outputs: layerNames.map((n) => model.getLayer(n).output) });
const outputs = probe.predict(x, { batchSize: kBatch });
layerNames.forEach((n, i) => dump(`${n}.output`, outputs[i].shape, outputs[i].dataSync()));

// The loss as the compiled model computes it in training (makeTrainFunction in
// tfjs-layers/dist/engine/training.js): tfc.mean(lossFunction(targets, outputs)).
model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
const lossFunction = model.model.lossFunctions[0];  // a Sequential compiles its inner LayersModel
const lossOf = () => tf.mean(lossFunction(y, model.apply(x, { training: true })));

// ---- Gradients ---------------------------------------------------------------------------
const variables = model.trainableWeights.map((w) => w.read());
const { value: lossValue, grads } = tf.variableGrads(lossOf, variables);
dump('loss', [1], lossValue.dataSync());
const nameOf = (variable) => {
  const w = model.trainableWeights.find((tw) => tw.read().name === variable);
  const [layer, kind] = w.originalName.split('/');  // e.g. "dense_1/kernel"
  return `${layer}.${kind}`;
};
const gradients = {};
for (const [variable, g] of Object.entries(grads)) gradients[nameOf(variable)] = { shape: g.shape, data: g.dataSync() };
dumpWeights('grad', gradients);

// ---- One step of SGD(0.01), as fit() would take it ----------------------------------
const loss1 = model.trainOnBatch(x, y);
const sgdLoss = (await loss1);
if (Math.fround(sgdLoss) !== lossValue.dataSync()[0])
  console.warn(`note: trainOnBatch's loss ${sgdLoss} differs from variableGrads's ${lossValue.dataSync()[0]}`);
dumpWeights('sgd', getWeights(model));

// ---- Two steps of SGD(0.01, momentum 0.9) on the same batch ------------------------
const momentumModel = buildModel();
setWeights(momentumModel, initial);
momentumModel.compile({ optimizer: tf.train.momentum(0.01, 0.9), loss: 'categoricalCrossentropy' });
await momentumModel.trainOnBatch(x, y);
await momentumModel.trainOnBatch(x, y);
dumpWeights('momentum2', getWeights(momentumModel));

// ---- README and size -------------------------------------------------------------------
const readme = `# Keras reference fixtures (TensorFlow.js ${tfjsVersion}, cpu backend)

Written by \`tools/keras-reference/fixtures.mjs\`; regenerate with

    tools/keras-reference/run fixtures.mjs

(it reads \`data/mnist/train-images-idx3-ubyte\` and \`train-labels-idx1-ubyte\`, raw or \`.gz\`).
The reference is TensorFlow.js's layers API (\`@tensorflow/tfjs\` and \`@tensorflow/tfjs-backend-cpu\`
${tfjsVersion}, pinned in \`tools/keras-reference/package.json\`), the JavaScript port of Keras; where it
differs from Python Keras is listed in \`tools/keras-reference/README.md\`.

## The batch and the model

- x: the first ${kBatch} training images, \`float(pixel) / 255.0f\` in float32, shape (${kBatch}, 28, 28, 1);
  y: their labels one-hot, shape (${kBatch}, 10).
- Conv2D(32, 3x3, relu) \`conv2d\` -> MaxPooling2D(2) \`max_pooling2d\` -> Flatten \`flatten\` ->
  Dense(100, relu) \`dense\` -> Dense(10, softmax) \`dense_1\`; categorical cross-entropy.

## The weights: a formula, not random numbers

For tensor number t (conv2d.kernel 1, conv2d.bias 2, dense.kernel 3, dense.bias 4, dense_1.kernel 5,
dense_1.bias 6) and flat row-major index i in Keras's layout, a 32-bit hash gives u in [0, 1):

    h = (i * 2654435761 + t * 40503) mod 2^32
    h ^= h >> 16;  h = (h * 0x45d9f3b) mod 2^32;  h ^= h >> 16;  h = (h * 0x45d9f3b) mod 2^32;  h ^= h >> 16
    u = h / 2^32

and, in double, rounded to float32 at the end:

- kernels: \`(u - 0.5) * 2 * limit\`, with \`limit = sqrt(6 / (fan_in + fan_out))\` and
  (fan_in, fan_out) = (9, 288) for conv2d, (5408, 100) for dense, (100, 10) for dense_1;
- biases: \`(u - 0.5) * 0.2\`.

A hash rather than a simple pattern: weights on a lattice (an earlier version used
\`i * 7919 mod 1009\`) made five pooling windows of the batch tie to within float rounding between
different inputs, and there the course and tfjs, both right, routed the gradient differently.

## The files

All are float32 \`.npy\` files in the course's own format (what \`nn::encode_npy\` writes).

| name | what |
|---|---|
| \`conv2d.output\`, \`max_pooling2d.output\`, \`flatten.output\`, \`dense.output\`, \`dense_1.output\` | each layer's output on the batch (\`dense_1.output\`: the softmax probabilities) |
| \`loss\` | shape (1,): the batch mean categorical cross-entropy as tfjs's model computes it in training |
| \`<weight>.grad\` | the gradient of that loss for each of the six weights (tf.variableGrads) |
| \`<weight>.sgd\` | the weights after one step of SGD(lr 0.01) from the formula weights (model.trainOnBatch) |
| \`<weight>.momentum2\` | the weights after two steps of SGD(lr 0.01, momentum 0.9, tf.train.momentum) on the same batch |
| \`dense.kernel.initial\` | the formula's dense.kernel, to check that both sides compute the same formula |

\`<weight>\` is one of ${kWeightNames.map((n) => `\`${n}\``).join(', ')}.

## Comparing with them

These are tfjs's numbers, correct to float32 rounding but not bit for bit what another implementation
computes: the cpu backend sums many products in double, takes the batch mean by dividing first, clips the
probabilities at 1e-7 in the loss, keeps momentum in the TF1 form, and gives a max-pooling window's
gradient to the first of equal maxima (in row-major order; ties are frequent on this batch). Each point, with
the tfjs source it comes from, is in \`tools/keras-reference/README.md\`. Compare with a tolerance of a few
units in the last place (relative), larger for long sums.

## The size rule

A tensor with at most ${kWholeLimit} elements is stored whole with its shape, as \`NAME.npy\`. A larger one
is stored as three files:

- \`NAME.every31.npy\`: the flat elements 0, 31, 62, ... as a 1-D array;
- \`NAME.sum_last.npy\`: the sum over the last axis, shape = all axes but the last;
- \`NAME.sum_rest.npy\`: the sum over all axes but the last, shape (last,).

The sums are taken in float64 (in flat order) and stored as float32.

## convnet/: keras.io's Simple MNIST convnet

The subfolder \`convnet/\` holds the same kind of fixtures for chapter 12's model (Conv2D(32) ->
MaxPooling2D -> Conv2D(64) with 32 input channels -> MaxPooling2D -> Flatten -> Dropout(0.5) -> Dense(10)):
every layer's output in inference mode, and the loss and the gradients without the Dropout. It is written
by \`tools/keras-reference/run convnet-fixtures.mjs\` (this script leaves it alone) and described in its own
\`README.md\`.

## batchnorm/: BatchNormalization

The subfolder \`batchnorm/\` holds BatchNormalization with Keras's defaults, alone: its output in training and
in inference mode, and its weights and moving statistics after three SGD steps. Written by
\`tools/keras-reference/run bn-fixtures.mjs\` (this script leaves it alone) and described in its own \`README.md\`.

## trajectories/: 100 steps of each optimizer

The subfolder \`trajectories/\` holds 100 steps of SGD, momentum, Nesterov, RMSprop and Adam on the first 8
training images: the loss and the relu sign pattern of every step, and a sample of the weights every 10 steps.
Written by \`tools/keras-reference/run trajectory-fixtures.mjs\` (this script leaves it alone) and described in
its own \`README.md\`.
`;
fs.writeFileSync(path.join(outDir, 'README.md'), readme);

const total = folderBytes(outDir);  // without the convnet/ subfolder (convnet-fixtures.mjs)
console.log(`${written.length} .npy files and README.md in ${path.relative(process.cwd(), outDir) || '.'}: ${total} bytes (${formatBytes(total)})`);
console.log(`loss ${lossValue.dataSync()[0]} (tfjs ${tfjsVersion}, backend ${tf.getBackend()})`);
if (total >= 2 * 1024 * 1024) throw new Error('the fixtures folder is not under 2 MB');
