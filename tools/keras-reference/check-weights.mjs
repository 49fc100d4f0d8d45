// Do the course and TensorFlow.js predict the same with the same weights?
//
//   node check-weights.mjs [--weights DIR] [--data DIR] [--course BIN] [--batch N] [--no-course]
//
// Loads the six .npy files of DIR (checked against its manifest.txt) into the
// tfjs model, predicts the 10,000 test images, runs the course's side
//   BIN --load DIR --index 0 --probabilities TMPFILE --plots TMPDIR
// (which writes the course's (10000, 10) probabilities and prints
// "test set: loss L accuracy A"), and compares. Exits 1 if any image's
// predicted class differs, 2 on an error.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { initTf, tf, buildModel, setWeights, loadWeightsFolder, loadMnist, readNpy, commandLineOption } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = commandLineOption;
const weightsDir = path.resolve(option('--weights', path.join(here, '../../build/weights')));
const dataDir = path.resolve(option('--data', path.join(here, '../../data/mnist')));
const courseBin = path.resolve(option('--course', path.join(here, '../../build/bin/ch11-predict')));
const batch = Number(option('--batch', '500'));
const withCourse = !args.includes('--no-course');

// argmax with the first maximum winning (as numpy's argmax)
const argmax = (p, row, classes = 10) => {
  let best = 0;
  for (let c = 1; c < classes; ++c) if (p[row * classes + c] > p[row * classes + best]) best = c;
  return best;
};
// Mean cross-entropy and accuracy from probabilities, in double, -log(p[label]) unclipped.
function summarize(p, labels) {
  let loss = 0;
  let correct = 0;
  for (let i = 0; i < labels.length; ++i) {
    loss -= Math.log(p[i * 10 + labels[i]]);
    if (argmax(p, i) === labels[i]) ++correct;
  }
  return { loss: loss / labels.length, accuracy: correct / labels.length };
}

async function main() {
  await initTf();
  const { epoch, weights } = loadWeightsFolder(weightsDir);
  const test = loadMnist(dataDir, 't10k');
  const n = test.count;
  console.log(`weights: ${weightsDir} (epoch ${epoch}), test set: ${n} images from ${dataDir}`);

  // ---- tfjs ----
  const model = buildModel();
  setWeights(model, weights);
  const started = Date.now();
  const tfjsP = new Float32Array(n * 10);
  let tfjsLossMean = 0;  // the model's own loss (clipped, as tfjs computes it), averaged over batches by size
  const lossFunction = (() => {
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
    return model.model.lossFunctions[0];
  })();
  for (let first = 0; first < n; first += batch) {
    const count = Math.min(batch, n - first);
    tf.tidy(() => {
      const x = tf.tensor4d(test.x.subarray(first * 784, (first + count) * 784), [count, 28, 28, 1], 'float32');
      const y = tf.tensor2d(test.y.subarray(first * 10, (first + count) * 10), [count, 10], 'float32');
      const p = model.predict(x, { batchSize: count });
      tfjsP.set(p.dataSync(), first * 10);
      tfjsLossMean += tf.sum(lossFunction(y, p)).dataSync()[0];
    });
  }
  tfjsLossMean /= n;
  const tfjs = summarize(tfjsP, test.labels);
  console.log(`tfjs ${tf.version.tfjs} (cpu): loss ${tfjs.loss.toFixed(6)} accuracy ${tfjs.accuracy.toFixed(6)}` +
              ` (its clipped categoricalCrossentropy: ${tfjsLossMean.toFixed(6)}; ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (!withCourse) return 0;

  // ---- the course ----
  if (!fs.existsSync(courseBin)) throw new Error(`${courseBin}: no such program (build the course first, or pass --course BIN)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-reference-'));
  try {
    const probFile = path.join(tmp, 'probabilities.npy');
    const run = spawnSync(courseBin, ['--load', weightsDir, '--data', dataDir, '--index', '0', '--probabilities', probFile,
                                      '--plots', path.join(tmp, 'plots')], { encoding: 'utf8' });
    if (run.error) throw run.error;
    if (run.status !== 0)
      throw new Error(`${path.basename(courseBin)} exited with ${run.status}:\n${run.stdout}${run.stderr}`);
    const m = /test set: loss (\S+) accuracy (\S+)/.exec(run.stdout);
    if (!m) throw new Error(`${path.basename(courseBin)} printed no line 'test set: loss L accuracy A':\n${run.stdout}`);
    const courseLine = { loss: Number(m[1]), accuracy: Number(m[2]) };
    const course = readNpy(probFile);
    if (course.shape.join(',') !== `${n},10`) throw new Error(`${probFile}: shape (${course.shape}), expected (${n}, 10)`);
    const mine = summarize(course.data, test.labels);
    console.log(`course: loss ${courseLine.loss.toFixed(6)} accuracy ${courseLine.accuracy.toFixed(6)} (as it prints them;` +
                ` from its probabilities here: loss ${mine.loss.toFixed(6)} accuracy ${mine.accuracy.toFixed(6)})`);

    // ---- compare ----
    let differ = 0;
    const firstDiffering = [];
    let maxDiff = 0;
    let where = [0, 0];
    for (let i = 0; i < n; ++i) {
      const a = argmax(tfjsP, i);
      const b = argmax(course.data, i);
      if (a !== b) {
        ++differ;
        if (firstDiffering.length < 10) firstDiffering.push(`${i} (tfjs ${a}, course ${b})`);
      }
      for (let c = 0; c < 10; ++c) {
        const d = Math.abs(tfjsP[i * 10 + c] - course.data[i * 10 + c]);
        if (!(d <= maxDiff)) { maxDiff = d; where = [i, c]; }  // !(<=) also catches NaN
      }
    }
    const [wi, wc] = where;
    console.log(`images whose predicted class differs: ${differ} of ${n}${differ ? ': ' + firstDiffering.join(', ') : ''}`);
    console.log(`largest |difference| in a probability: ${maxDiff.toExponential(3)} at image ${wi} class ${wc}` +
                ` (tfjs ${tfjsP[wi * 10 + wc]}, course ${course.data[wi * 10 + wc]})`);
    console.log(`loss difference ${(courseLine.loss - tfjs.loss).toExponential(3)}, accuracy difference ` +
                `${(courseLine.accuracy - tfjs.accuracy).toFixed(6)}`);
    return differ === 0 ? 0 : 1;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (e) => {
  console.error(`check-weights: ${e.message}`);
  process.exit(2);
});
