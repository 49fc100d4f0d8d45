// 100-step trajectories of the five optimizers from TensorFlow.js's layers API,
// for the course's tests (KerasReference.OptimizerTrajectories).
//
//   tools/keras-reference/run trajectory-fixtures.mjs [--data DIR] [--out DIR] [--steps N] [--runs LIST]
//
// From the formula weights of fixtures.mjs, each optimizer takes 100 steps
// (model.trainOnBatch) on the same batch, the first 8 training images
// (fixtures.mjs uses 32; 8 keep the 600 steps of tfjs's cpu backend to minutes). Per
// step it records the loss and the relu sign pattern of both hidden layers
// (how many pre-activations are > 0, and a checksum of where), and every 10
// steps a sample of the weights. Writes tests/fixtures/keras-reference/trajectories/
// (about 200 KiB) and its README.md. Slow: 600 training steps on the cpu backend,
// 2 to 3 s each; `--runs sgd,adam` writes only those runs' files (to run them in parallel).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  initTf, tf, buildModel, getWeights, setWeights, kWeightNames, kWeightShapes, loadMnist, formatBytes,
  commandLineOption, formulaWeights, writeNpy, folderBytes,
} from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.resolve(commandLineOption('--data', path.join(here, '../../data/mnist')));
const outDir = path.resolve(commandLineOption('--out', path.join(here, '../../tests/fixtures/keras-reference/trajectories')));
const kSteps = Number(commandLineOption('--steps', '100'));
const kEvery = 10;  // a weights sample after steps 10, 20, ...
const kBatch = Number(commandLineOption('--batch', '8'));  // the first 8 training images: 4 times faster than 32
const kIndexModulus = 8388608;  // 2^23: the index checksum stays an exact float32

await initTf();
const tfjsVersion = tf.version.tfjs;

const kFans = { conv2d: [9, 288], dense: [5408, 100], dense_1: [100, 10] };
const initial = formulaWeights(kWeightNames, kWeightShapes, kFans);

// The weights sample: of each tensor, the flat elements 0, s, 2s, ... with
// s = ceil(size / 256), concatenated in kWeightNames order. The C++ side uses the same rule.
const strideOf = (name) => Math.ceil(kWeightShapes[name].reduce((a, b) => a * b, 1) / 256);
function sample(weights) {
  const out = [];
  for (const name of kWeightNames) {
    const { data } = weights[name];
    for (let i = 0; i < data.length; i += strideOf(name)) out.push(data[i]);
  }
  return Float32Array.from(out);
}

// The relu sign pattern of a layer's output: the count of values > 0 and the
// sum of their flat indices mod 2^23 (relu(x) > 0 exactly when x > 0).
function signs(values) {
  let count = 0, sum = 0;
  for (let i = 0; i < values.length; ++i) if (values[i] > 0) { ++count; sum = (sum + i) % kIndexModulus; }
  return [count, sum];
}

const mnist = loadMnist(dataDir, 'train', kBatch);
if (mnist.count < kBatch) throw new Error(`${dataDir}: only ${mnist.count} training images`);
const x = tf.tensor4d(mnist.x, [kBatch, 28, 28, 1], 'float32');
const y = tf.tensor2d(mnist.y, [kBatch, 10], 'float32');

// Keras 3's Adam (keras/src/optimizers/adam.py, update_step, Keras 3.8), op for op
// in tfjs: tfjs's own Adam (tf.train.adam) adds epsilon after the bias
// correction, so its epsilon acts sqrt(1 - b2^t) times smaller, and a weight
// with a tiny gradient takes another step (tools/keras-reference/README.md,
// "09 optimizers"). Each tfjs op is computed in double and rounded to float32,
// which for one multiply, add, sqrt or power is the float operation itself.
// 1 - b1 and 1 - b2 are JavaScript numbers (doubles), rounded to float32 when
// they meet a tensor, as Keras's Python floats.
class Keras3Adam extends tf.Optimizer {
  constructor(learningRate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7) {
    super();
    Object.assign(this, { learningRate, beta1, beta2, epsilon, moments: new Map(), t: 0 });
  }
  static get className() { return 'Keras3Adam'; }
  getConfig() { return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon }; }
  applyGradients(variableGradients) {
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const t = ++this.t;
    tf.tidy(() => {
      const lr = tf.scalar(this.learningRate, 'float32');
      const localStep = tf.scalar(t, 'float32');
      const beta1Power = tf.pow(tf.scalar(this.beta1, 'float32'), localStep);
      const beta2Power = tf.pow(tf.scalar(this.beta2, 'float32'), localStep);
      const alpha = tf.div(tf.mul(lr, tf.sqrt(tf.sub(1, beta2Power))), tf.sub(1, beta1Power));
      names.forEach((name, i) => {
        const variable = tf.engine().registeredVariables[name];
        const g = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
        if (!this.moments.has(name))
          this.moments.set(name, [tf.zerosLike(variable).variable(false), tf.zerosLike(variable).variable(false)]);
        const [m, v] = this.moments.get(name);
        m.assign(tf.add(m, tf.mul(tf.sub(g, m), 1 - this.beta1)));
        v.assign(tf.add(v, tf.mul(tf.sub(tf.square(g), v), 1 - this.beta2)));
        variable.assign(tf.sub(variable, tf.div(tf.mul(m, alpha), tf.add(tf.sqrt(v), this.epsilon))));
      });
    });
    this.incrementIterations();
  }
}

// tfjs's defaults: rmsprop epsilon and adam epsilon are backend().epsilon() = 1e-7, as Keras's.
const allRuns = [
  ['sgd', () => tf.train.sgd(0.01)],
  ['momentum', () => tf.train.momentum(0.01, 0.9)],
  ['nesterov', () => tf.train.momentum(0.01, 0.9, true)],
  ['rmsprop', () => tf.train.rmsprop(0.001, 0.9)],
  ['adam', () => new Keras3Adam(0.001, 0.9, 0.999, 1e-7)],
  ['adam-tfjs', () => tf.train.adam(0.001, 0.9, 0.999)],
];
const chosen = commandLineOption('--runs', allRuns.map(([n]) => n).join(',')).split(',');
for (const n of chosen) if (!allRuns.some(([name]) => name === n)) throw new Error(`--runs: no run ${n}`);
const runs = allRuns.filter(([n]) => chosen.includes(n));

fs.mkdirSync(outDir, { recursive: true });
for (const f of fs.readdirSync(outDir))  // no stale files of the runs written now
  if (f.endsWith('.npy') && chosen.includes(f.split('.')[0])) fs.unlinkSync(path.join(outDir, f));
const written = [];
const write = (name, shape, data) => {
  writeNpy(path.join(outDir, `${name}.npy`), shape, data);
  written.push(name);
};

for (const [name, makeOptimizer] of runs) {
  const started = Date.now();
  const model = buildModel();
  setWeights(model, initial);
  model.compile({ optimizer: makeOptimizer(), loss: 'categoricalCrossentropy' });
  const probe = tf.model({ inputs: model.inputs, outputs: ['conv2d', 'dense'].map((n) => model.getLayer(n).output) });
  const losses = new Float32Array(kSteps);
  const pattern = new Float32Array(kSteps * 4);  // per step: conv2d count, conv2d checksum, dense count, dense checksum
  const samples = [];
  for (let step = 1; step <= kSteps; ++step) {
    // The sign pattern of the forward pass this step trains on (the weights before the step).
    const outs = tf.tidy(() => probe.predict(x, { batchSize: kBatch }));
    const [c, d] = outs.map((t) => t.dataSync());
    tf.dispose(outs);
    pattern.set([...signs(c), ...signs(d)], (step - 1) * 4);
    losses[step - 1] = await model.trainOnBatch(x, y);
    if (step % kEvery === 0) {
      samples.push(sample(getWeights(model)));
      console.log(`${name}: step ${step} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  }
  write(`${name}.loss`, [kSteps], losses);
  write(`${name}.signs`, [kSteps, 4], pattern);
  const flat = new Float32Array(samples.length * samples[0].length);
  samples.forEach((s, k) => flat.set(s, k * s.length));
  write(`${name}.weights`, [samples.length, samples[0].length], flat);
  console.log(`${name}: loss ${losses[0]} -> ${losses[kSteps - 1]} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}

const readme = `# 100-step optimizer trajectories (TensorFlow.js ${tfjsVersion}, cpu backend)

Written by \`tools/keras-reference/trajectory-fixtures.mjs\`; regenerate with

    tools/keras-reference/run trajectory-fixtures.mjs

(slow: 600 training steps on tfjs's cpu backend, 2 to 3 s each; \`--runs sgd,adam\` writes only those runs,
so that several processes can share the work). The batch, the model and the formula
weights are those of the parent folder (\`../README.md\`), but the batch is the first ${kBatch} training images
(not 32: tfjs's cpu backend is slow). From the formula weights, each optimizer takes ${kSteps} steps of
\`model.trainOnBatch\` on that same batch:

| run | tfjs optimizer |
|---|---|
| \`sgd\` | \`tf.train.sgd(0.01)\` |
| \`momentum\` | \`tf.train.momentum(0.01, 0.9)\` |
| \`nesterov\` | \`tf.train.momentum(0.01, 0.9, true)\` |
| \`rmsprop\` | \`tf.train.rmsprop(0.001, 0.9)\` (epsilon 1e-7) |
| \`adam\` | Keras 3's Adam(0.001) written op for op in tfjs (\`Keras3Adam\` in the script; epsilon 1e-7) |
| \`adam-tfjs\` | tfjs's own \`tf.train.adam(0.001, 0.9, 0.999)\` (epsilon 1e-7, added after the bias correction) |

## The files, per run

| name | what |
|---|---|
| \`<run>.loss\` | shape (${kSteps},): the loss of step k (the batch loss before its update), as trainOnBatch returns it |
| \`<run>.signs\` | shape (${kSteps}, 4): the relu sign pattern of the forward pass of step k: for conv2d's output, then dense's, the count of values > 0 and the sum of their flat indices mod 2^23 |
| \`<run>.weights\` | shape (${kSteps / kEvery}, S): after steps ${kEvery}, ${2 * kEvery}, ..., ${kSteps}, a sample of the weights: of each tensor in the order ${kWeightNames.map((n) => `\`${n}\``).join(', ')}, the flat elements 0, s, 2s, ... with s = ceil(size / 256) |

The sign pattern tells where a relu flipped: a pre-activation within rounding of 0 that the course and
tfjs (each summing in its own order) put on different sides, after which the two runs part.
How tfjs's optimizers differ from Keras's is in \`tools/keras-reference/README.md\` (09 optimizers).
`;
fs.writeFileSync(path.join(outDir, 'README.md'), readme);
const total = folderBytes(outDir);
console.log(`${written.length} .npy files and README.md in ${path.relative(process.cwd(), outDir) || '.'}: ${total} bytes (${formatBytes(total)}), tfjs ${tfjsVersion}`);
