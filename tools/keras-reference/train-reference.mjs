// Trains the Keras model with TensorFlow.js and saves its weights in the
// course's format, for the course to load:
//
//   node train-reference.mjs --out DIR [--epochs 1] [--seed S] [--data DIR] [--limit N]
//   node check-weights.mjs --weights DIR
//
// glorot_uniform kernels (tfjs's default would be glorotNormal), zero biases,
// SGD(lr 0.01), categorical cross-entropy, batch 32, the training set shuffled
// every epoch. With --seed the initial weights and the shuffles repeat (tfjs's
// own fit(shuffle: true) draws from Math.random, which cannot be seeded, so the
// shuffle is done here and fit() runs with shuffle: false). --limit N trains on
// the first N images only (to time a run).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { initTf, tf, buildModel, getWeights, saveWeightsFolder, loadMnist, commandLineOption } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = commandLineOption;
const outArg = option('--out', null);
if (!outArg) {
  console.error('usage: node train-reference.mjs --out DIR [--epochs 1] [--seed S] [--data DIR] [--limit N]');
  process.exit(2);
}
const outDir = path.resolve(outArg);
const dataDir = path.resolve(option('--data', path.join(here, '../../data/mnist')));
const epochs = Number(option('--epochs', '1'));
const seedArg = option('--seed', null);
const seed = seedArg === null ? Math.floor(Math.random() * 2 ** 31) : Number(seedArg);
const limit = Number(option('--limit', 'Infinity'));
const kBatch = 32;

// mulberry32: a small seeded generator for the shuffles
function generator(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

await initTf();
const train = loadMnist(dataDir, 'train', limit);
const n = train.count;
console.log(`tfjs ${tf.version.tfjs} (${tf.getBackend()}): training on ${n} images from ${dataDir}, ${epochs} epoch(s), ` +
            `batch ${kBatch}, SGD(0.01), seed ${seed}`);

const model = buildModel({ seed });
model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

const random = generator(seed ^ 0x5eed);
const order = Array.from({ length: n }, (_, i) => i);
const xs = new Float32Array(n * 784);
const ys = new Float32Array(n * 10);
const started = Date.now();
for (let epoch = 1; epoch <= epochs; ++epoch) {
  for (let i = n - 1; i > 0; --i) {  // Fisher-Yates
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  order.forEach((src, dst) => {
    xs.set(train.x.subarray(src * 784, src * 784 + 784), dst * 784);
    ys.set(train.y.subarray(src * 10, src * 10 + 10), dst * 10);
  });
  const x = tf.tensor4d(xs, [n, 28, 28, 1], 'float32');
  const y = tf.tensor2d(ys, [n, 10], 'float32');
  const epochStart = Date.now();
  let lastReport = Date.now();
  const history = await model.fit(x, y, {
    batchSize: kBatch, epochs: 1, shuffle: false, verbose: 0,
    callbacks: {
      onBatchEnd: async (b, logs) => {
        if (Date.now() - lastReport > 15000) {
          lastReport = Date.now();
          const done = (b + 1) * kBatch;
          console.log(`  epoch ${epoch}: ${done}/${n} images, loss ${logs.loss.toFixed(4)}, ` +
                      `${((Date.now() - epochStart) / 1000).toFixed(0)} s`);
        }
      },
    },
  });
  x.dispose();
  y.dispose();
  console.log(`epoch ${epoch}/${epochs}: loss ${history.history.loss[0].toFixed(6)} accuracy ` +
              `${history.history.acc[0].toFixed(6)} (${((Date.now() - epochStart) / 1000).toFixed(1)} s)`);
}
saveWeightsFolder(outDir, getWeights(model), epochs);
console.log(`saved ${outDir} (manifest.txt, epoch ${epochs}) after ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
            `compare: node check-weights.mjs --weights ${path.relative(here, outDir) || '.'}`);
