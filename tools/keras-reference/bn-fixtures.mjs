// Reference fixtures for BatchNormalization from TensorFlow.js's layers API:
// tf.layers.batchNormalization with its defaults (axis -1, momentum 0.99,
// epsilon 0.001, gamma ones, beta zeros, moving mean zeros, moving variance
// ones), alone in a model, trained three SGD steps on a mean squared error.
//
//   tools/keras-reference/run bn-fixtures.mjs [--out DIR]
//
// Writes tests/fixtures/keras-reference/batchnorm/ (a few KB) and its README.md.
// The inputs come from common.mjs's hashUniform and are stored too, so the C++
// side reads them instead of recomputing the formula.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { initTf, tf, commandLineOption, hashUniform, makeDumper, folderBytes, formatBytes } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(commandLineOption('--out', path.join(here, '../../tests/fixtures/keras-reference/batchnorm')));
const kShape = [6, 3, 3, 4];  // (N, H, W, C): 54 rows per channel, as after a small convolution
const kSteps = 3;
const kLearningRate = 0.5;

await initTf();
const tfjsVersion = tf.version.tfjs;
const count = kShape.reduce((a, b) => a * b, 1);
const channels = kShape[3];

// Batch t (t = 1..3) and the target (t = 9): channel c has its values in
// [c - 1, 2c + 1), so that each channel has its own mean and spread and the
// moving statistics move visibly. Computed in double, rounded to float32.
function batch(t) {
  const v = new Float32Array(count);
  for (let i = 0; i < count; ++i) {
    const c = i % channels;
    v[i] = (c - 1) + (c + 2) * hashUniform(i, t);
  }
  return v;
}
const xs = [1, 2, 3].map(batch);
const target = Float32Array.from(batch(9), (v, i) => v * 0.5 - (i % channels) * 0.25);

function build() {
  const model = tf.sequential();
  model.add(tf.layers.batchNormalization({ inputShape: kShape.slice(1), name: 'batch_normalization' }));
  return model;
}
const weightsOf = (model) => Object.fromEntries(
  model.layers[0].weights.map((w) => [w.originalName.split('/')[1], { shape: w.shape, data: w.read().dataSync() }]));

const { dump, written } = makeDumper(outDir, { wholeLimit: 4096 });
xs.forEach((x, k) => dump(`x${k}`, kShape, x));
dump('target', kShape, target);

// Training-mode output of a fresh layer on x0: the batch's statistics.
{
  const model = build();
  const y = model.apply(tf.tensor(xs[0], kShape), { training: true });
  dump('output.training', kShape, y.dataSync());
}

// Three SGD steps, one per batch, on mean squared error.
const model = build();
model.compile({ optimizer: tf.train.sgd(kLearningRate), loss: 'meanSquaredError' });
const names = model.layers[0].weights.map((w) => w.originalName);
const expectedNames = ['batch_normalization/gamma', 'batch_normalization/beta', 'batch_normalization/moving_mean',
  'batch_normalization/moving_variance'];
if (names.join() !== expectedNames.join()) throw new Error(`weights ${names}, expected ${expectedNames}`);
if (model.layers[0].trainableWeights.length !== 2) throw new Error('gamma and beta should be the only trainable weights');
const losses = new Float32Array(kSteps);
for (let k = 0; k < kSteps; ++k) {
  losses[k] = await model.trainOnBatch(tf.tensor(xs[k], kShape), tf.tensor(target, kShape));
}
dump('loss', [kSteps], losses);
const after = weightsOf(model);
for (const name of ['gamma', 'beta', 'moving_mean', 'moving_variance']) dump(`${name}.after${kSteps}`, after[name].shape, after[name].data);

// Inference (predict: training false) on x0 with the trained layer: the moving statistics.
dump('output.inference', kShape, model.predict(tf.tensor(xs[0], kShape)).dataSync());

const readme = `# Keras reference fixtures: BatchNormalization (TensorFlow.js ${tfjsVersion}, cpu backend)

Written by \`tools/keras-reference/bn-fixtures.mjs\`; regenerate with

    tools/keras-reference/run bn-fixtures.mjs

Read by \`KerasReference.BatchNormalization*\` in \`tests/keras_reference_test.cpp\`.

## The model and the data

- One layer, \`tf.layers.batchNormalization\` with its defaults: axis -1, momentum 0.99, epsilon 0.001, gamma
  ones, beta zeros, moving mean zeros, moving variance ones; name \`batch_normalization\`, weights \`gamma\`,
  \`beta\` (trainable), \`moving_mean\`, \`moving_variance\` (not trainable), in that order.
- Input (N, H, W, C) = (${kShape.join(', ')}): ${kShape[0] * kShape[1] * kShape[2]} rows per channel.
  \`x0\`, \`x1\`, \`x2\`: channel c holds (c - 1) + (c + 2) u with u = hashUniform(i, t) of \`common.mjs\`,
  t = 1, 2, 3, i the flat index; \`target\`: the same with t = 9, times 0.5, minus 0.25 c.
- Loss: meanSquaredError (the mean over every element); optimizer: SGD, learning rate ${kLearningRate}; one
  \`trainOnBatch\` on each of x0, x1, x2 in turn, against the same target.

## The files

| name | what |
|---|---|
| \`x0\`, \`x1\`, \`x2\`, \`target\` | the inputs above |
| \`output.training\` | a fresh layer's output on x0 in training mode (\`apply(x, {training: true})\`): the batch's statistics |
| \`loss\` | (${kSteps},): the loss of each training step, before its update |
| \`gamma.after${kSteps}\`, \`beta.after${kSteps}\` | the trainable weights after the ${kSteps} steps |
| \`moving_mean.after${kSteps}\`, \`moving_variance.after${kSteps}\` | the moving statistics after the ${kSteps} steps |
| \`output.inference\` | the trained layer's output on x0 in inference mode (\`predict\`): the moving statistics |
`;
fs.writeFileSync(path.join(outDir, 'README.md'), readme);
const total = folderBytes(outDir);
console.log(`${written.length} .npy files and README.md in ${path.relative(process.cwd(), outDir) || '.'}: ${total} bytes (${formatBytes(total)})`);
console.log(`losses ${Array.from(losses).join(' ')}; moving_variance ${Array.from(after.moving_variance.data).join(' ')}`);
if (total >= 16 * 1024) throw new Error('the batchnorm fixtures are not under 16 KiB');
