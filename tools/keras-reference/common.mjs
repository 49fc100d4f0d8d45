// Shared by fixtures.mjs, convnet-fixtures.mjs, check-weights.mjs and
// train-reference.mjs: the course's .npy format, its weights folder
// (manifest.txt with CRC-32s), the MNIST IDX reader, the Keras models built
// with TensorFlow.js's layers API, and the fixtures' formula weights and size rule.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

// The cpu backend, explicitly: tfjs-node is not used (its install downloads a
// native library from outside the npm registry), and the webgl backend does
// not exist under Node. Every kernel quoted in README.md is the cpu one.
export async function initTf() {
  await tf.setBackend('cpu');
  await tf.ready();
  if (tf.getBackend() !== 'cpu') throw new Error(`backend is ${tf.getBackend()}, not cpu`);
  return tf;
}
export { tf };

// ---- .npy, exactly as lib/src/data/npy.cpp writes it ------------------------------
//
// Version 1.0, '<f4', C order, the header padded with spaces so that the data
// starts at a multiple of 64 bytes, then '\n'. The shape is "(10,)" for rank 1
// and "(3, 3, 1, 32)" otherwise, as nn::npy_header writes it.
const kMagic = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);  // \x93NUMPY
const kPreamble = 10;  // magic (6) + version (2) + header length (2)

export function npyHeader(shape) {
  const dims = shape.length > 1 ? shape.join(', ') : `${shape[0]},`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  const total = Math.floor((kPreamble + header.length + 1 + 63) / 64) * 64;
  header += ' '.repeat(total - kPreamble - header.length - 1);
  return header + '\n';
}

export function encodeNpy(shape, data /* Float32Array, C order */) {
  if (shape.length < 1 || shape.length > 4) throw new Error(`rank ${shape.length}: the course's tensors have rank 1 to 4`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`shape (${shape}) needs ${count} values, got ${data.length}`);
  const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
  const header = Buffer.from(npyHeader(shape), 'latin1');
  const out = Buffer.alloc(kPreamble + header.length + count * 4);
  kMagic.copy(out, 0);
  out[6] = 1;  // version 1.0
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  header.copy(out, kPreamble);
  Buffer.from(f32.buffer, f32.byteOffset, count * 4).copy(out, kPreamble + header.length);
  return out;
}

// The same checks as nn::decode_npy; returns {shape, data: Float32Array}.
export function decodeNpy(bytes, name) {
  const fail = (what) => new Error(`${name}: ${what}`);
  if (bytes.length < kPreamble || !bytes.subarray(0, 6).equals(kMagic)) throw fail('not a .npy file');
  if (bytes[6] !== 1) throw fail(`unsupported .npy version ${bytes[6]}.${bytes[7]}`);
  const headerLen = bytes.readUInt16LE(8);
  if (bytes.length < kPreamble + headerLen) throw fail('file ends inside the .npy header');
  const header = bytes.subarray(kPreamble, kPreamble + headerLen).toString('latin1');
  if (!header.includes("'descr': '<f4'")) throw fail("not float32 little-endian data ('descr' is not '<f4')");
  if (!header.includes("'fortran_order': False")) throw fail('Fortran-ordered arrays are not supported');
  const m = /'shape': \(([^)]*)\)/.exec(header);
  if (!m) throw fail('no shape in the .npy header');
  const shape = m[1].split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    if (!/^\d+$/.test(s)) throw fail(`bad shape '(${m[1]})' in the .npy header`);
    return Number(s);
  });
  if (shape.length < 1 || shape.length > 4) throw fail(`shape '(${m[1]})' has rank ${shape.length}`);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = kPreamble + headerLen;
  if (bytes.length - start !== count * 4)
    throw fail(`holds ${bytes.length - start} bytes of data, but the shape (${shape}) needs ${count * 4}`);
  const data = new Float32Array(count);
  Buffer.from(data.buffer).set(bytes.subarray(start));  // copy: the file's data need not be 4-byte aligned
  return { shape, data };
}

export function writeNpy(file, shape, data) {
  fs.writeFileSync(file, encodeNpy(shape, data));
}

export function readNpy(file) {
  return decodeNpy(fs.readFileSync(file), file);
}

// ---- CRC-32 (zlib's, as Python's zlib.crc32 and the course's crc32_of) ------
let crcTable = null;
export function tableCrc32(bytes) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; ++n) {
      let c = n;
      for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; ++i) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
export function crc32(bytes) {
  return typeof zlib.crc32 === 'function' ? zlib.crc32(bytes) >>> 0 : tableCrc32(bytes);  // zlib.crc32: Node >= 20.15
}
export const crc32Hex = (bytes) => crc32(bytes).toString(16).padStart(8, '0');

// ---- The weights folder, as Sequential::save / Sequential::load ----------------
export const kWeightNames = [
  'conv2d.kernel', 'conv2d.bias', 'dense.kernel', 'dense.bias', 'dense_1.kernel', 'dense_1.bias',
];
export const kWeightShapes = {
  'conv2d.kernel': [3, 3, 1, 32], 'conv2d.bias': [32],
  'dense.kernel': [5408, 100], 'dense.bias': [100],
  'dense_1.kernel': [100, 10], 'dense_1.bias': [10],
};

// Reads manifest.txt and the six files, checking sizes, CRCs, shapes and
// finiteness as Sequential::load does. Returns {epoch, weights: {name: {shape, data}}}.
export function loadWeightsFolder(dir) {
  const manifestFile = path.join(dir, 'manifest.txt');
  if (!fs.existsSync(manifestFile)) throw new Error(`${dir}: no manifest.txt: not a complete set of course weights`);
  let format = -1;
  let epoch = 0;
  const listed = new Map();
  fs.readFileSync(manifestFile, 'latin1').split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    const w = line.trim().split(/\s+/);
    let ok = false;
    if (w[0] === 'format' && w.length === 2 && /^-?\d+$/.test(w[1])) { format = Number(w[1]); ok = true; }
    else if (w[0] === 'epoch' && w.length === 2 && /^-?\d+$/.test(w[1])) { epoch = Number(w[1]); ok = true; }
    else if (w[0] === 'file' && w.length === 5 && /^\d+$/.test(w[2]) && w[3] === 'crc32' && /^[0-9a-f]{8}$/.test(w[4]) &&
             !listed.has(w[1])) {
      listed.set(w[1], { bytes: Number(w[2]), crc: w[4] });
      ok = true;
    }
    if (!ok) throw new Error(`${manifestFile}: line ${i + 1} is malformed: '${line}'`);
  });
  if (format !== 1) throw new Error(`${manifestFile}: format ${format} is not the 1 this script reads`);
  const weights = {};
  for (const name of kWeightNames) {
    const file = path.join(dir, `${name}.npy`);
    const entry = listed.get(`${name}.npy`);
    if (!entry) throw new Error(`${manifestFile}: lists no ${name}.npy`);
    const bytes = fs.readFileSync(file);
    if (bytes.length !== entry.bytes || crc32Hex(bytes) !== entry.crc)
      throw new Error(`${file}: does not match the manifest (${bytes.length} bytes, crc32 ${crc32Hex(bytes)}; ` +
                      `it lists ${entry.bytes} bytes, crc32 ${entry.crc})`);
    const t = decodeNpy(bytes, file);
    if (t.shape.join(',') !== kWeightShapes[name].join(','))
      throw new Error(`${file}: shape (${t.shape}) is not the model's (${kWeightShapes[name]})`);
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${file}: value ${bad} is ${t.data[bad]}`);
    weights[name] = t;
  }
  for (const name of listed.keys())
    if (!kWeightNames.includes(name.replace(/\.npy$/, ''))) throw new Error(`${manifestFile}: lists ${name}, which the model has no weight for`);
  return { epoch, weights };
}

// Writes the six files and then manifest.txt (last, as the course does).
export function saveWeightsFolder(dir, weights /* {name: {shape, data}} */, epoch) {
  fs.mkdirSync(dir, { recursive: true });
  let manifest = `# Line by Line weights: load() checks every file against this list.\nformat 1\nepoch ${epoch}\n`;
  for (const name of kWeightNames) {
    const { shape, data } = weights[name];
    const bytes = encodeNpy(shape, data);
    fs.writeFileSync(path.join(dir, `${name}.npy`), bytes);
    manifest += `file ${name}.npy ${bytes.length} crc32 ${crc32Hex(bytes)}\n`;
  }
  fs.writeFileSync(path.join(dir, 'manifest.txt'), manifest);
}

// ---- MNIST IDX files (raw or .gz) --------------------------------------------
function readMaybeGz(dir, name) {
  const raw = path.join(dir, name);
  if (fs.existsSync(raw)) return fs.readFileSync(raw);
  if (fs.existsSync(raw + '.gz')) return zlib.gunzipSync(fs.readFileSync(raw + '.gz'));
  throw new Error(`${raw}: not found (nor ${raw}.gz)`);
}

// Returns {count, rows, cols, pixels: Uint8Array}; reads at most `limit` images.
export function readIdxImages(dir, name, limit = Infinity) {
  const b = readMaybeGz(dir, name);
  if (b.readUInt32BE(0) !== 0x00000803) throw new Error(`${name}: not an IDX image file (magic ${b.readUInt32BE(0).toString(16)})`);
  const total = b.readUInt32BE(4);
  const rows = b.readUInt32BE(8);
  const cols = b.readUInt32BE(12);
  const count = Math.min(total, limit);
  if (b.length < 16 + total * rows * cols) throw new Error(`${name}: truncated`);
  return { count, rows, cols, pixels: new Uint8Array(b.buffer, b.byteOffset + 16, count * rows * cols) };
}

export function readIdxLabels(dir, name, limit = Infinity) {
  const b = readMaybeGz(dir, name);
  if (b.readUInt32BE(0) !== 0x00000801) throw new Error(`${name}: not an IDX label file`);
  const total = b.readUInt32BE(4);
  const count = Math.min(total, limit);
  if (b.length < 8 + total) throw new Error(`${name}: truncated`);
  return new Uint8Array(b.buffer, b.byteOffset + 8, count);
}

// x = float(pixel) / 255.0f as the course computes it in float32: p / 255 in
// double, rounded once to float32, is the correctly rounded float32 quotient
// (the double quotient of two small integers is never a float32 rounding tie).
export function normalize(pixels) {
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; ++i) x[i] = Math.fround(pixels[i] / 255);
  return x;
}

export function oneHot(labels, classes = 10) {
  const y = new Float32Array(labels.length * classes);
  labels.forEach((l, i) => { y[i * classes + l] = 1; });
  return y;
}

export function loadMnist(dir, split /* 'train' | 't10k' */, limit = Infinity) {
  const images = readIdxImages(dir, `${split}-images-idx3-ubyte`, limit);
  const labels = readIdxLabels(dir, `${split}-labels-idx1-ubyte`, limit);
  if (labels.length !== images.count) throw new Error(`${split}: ${images.count} images but ${labels.length} labels`);
  return { count: images.count, x: normalize(images.pixels), labels, y: oneHot(labels) };
}

// ---- The model ----------------------------------------------------------------
//
// Names are set explicitly: tfjs would call the layers conv2d_Conv2D1,
// max_pooling2d_MaxPooling2D1, ... (Layer constructor in
// tfjs-layers/dist/engine/topology.js: toSnakeCase(className) + '_' + getUid(className)).
// kernelInitializer is set explicitly: tfjs's default is glorotNormal, Keras's glorot_uniform.
export function buildModel({ seed } = {}) {
  const init = (i) => tf.initializers.glorotUniform(seed === undefined ? {} : { seed: seed + i });
  const model = tf.sequential();
  model.add(tf.layers.conv2d({
    name: 'conv2d', inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu',
    kernelInitializer: init(0), biasInitializer: 'zeros',
  }));
  model.add(tf.layers.maxPooling2d({ name: 'max_pooling2d', poolSize: 2 }));
  model.add(tf.layers.flatten({ name: 'flatten' }));
  model.add(tf.layers.dense({ name: 'dense', units: 100, activation: 'relu', kernelInitializer: init(1), biasInitializer: 'zeros' }));
  model.add(tf.layers.dense({ name: 'dense_1', units: 10, activation: 'softmax', kernelInitializer: init(2), biasInitializer: 'zeros' }));
  return model;
}

// keras.io's "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet),
// chapter 12: Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3x3, relu)
// -> MaxPooling2D(2) -> Flatten -> Dropout(0.5) -> Dense(10, softmax), with
// Keras's automatic names. `dropout: false` leaves the Dropout out (the
// weights and the other names stay the same).
export const kConvnetWeightNames = [
  'conv2d.kernel', 'conv2d.bias', 'conv2d_1.kernel', 'conv2d_1.bias', 'dense.kernel', 'dense.bias',
];
export const kConvnetWeightShapes = {
  'conv2d.kernel': [3, 3, 1, 32], 'conv2d.bias': [32],
  'conv2d_1.kernel': [3, 3, 32, 64], 'conv2d_1.bias': [64],
  'dense.kernel': [1600, 10], 'dense.bias': [10],
};
export function buildConvnet({ dropout = true } = {}) {
  const glorot = () => tf.initializers.glorotUniform({});
  const model = tf.sequential();
  model.add(tf.layers.conv2d({
    name: 'conv2d', inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu',
    kernelInitializer: glorot(), biasInitializer: 'zeros',
  }));
  model.add(tf.layers.maxPooling2d({ name: 'max_pooling2d', poolSize: 2 }));
  model.add(tf.layers.conv2d({
    name: 'conv2d_1', filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: glorot(), biasInitializer: 'zeros',
  }));
  model.add(tf.layers.maxPooling2d({ name: 'max_pooling2d_1', poolSize: 2 }));
  model.add(tf.layers.flatten({ name: 'flatten' }));
  if (dropout) model.add(tf.layers.dropout({ name: 'dropout', rate: 0.5 }));
  model.add(tf.layers.dense({ name: 'dense', units: 10, activation: 'softmax', kernelInitializer: glorot(), biasInitializer: 'zeros' }));
  return model;
}

// The model's weights as {name: {shape, data}} with the course's names;
// `layerNames`: the layers that hold weights (default: the course's model).
export function getWeights(model, layerNames = ['conv2d', 'dense', 'dense_1']) {
  const out = {};
  for (const layerName of layerNames) {
    const [kernel, bias] = model.getLayer(layerName).getWeights();
    out[`${layerName}.kernel`] = { shape: kernel.shape, data: kernel.dataSync().slice() };
    out[`${layerName}.bias`] = { shape: bias.shape, data: bias.dataSync().slice() };
  }
  return out;
}

export function setWeights(model, weights, layerNames = ['conv2d', 'dense', 'dense_1']) {
  for (const layerName of layerNames) {
    const k = weights[`${layerName}.kernel`];
    const b = weights[`${layerName}.bias`];
    model.getLayer(layerName).setWeights([tf.tensor(k.data, k.shape, 'float32'), tf.tensor(b.data, b.shape, 'float32')]);
  }
}

export function formatBytes(n) {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

// The value after `name` on the command line (`--out DIR`), or `fallback`.
export function commandLineOption(name, fallback) {
  const args = process.argv.slice(2);
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

// ---- The fixtures' weights: a formula, not random numbers ----------------------
//
// t numbers the tensors in the model's order (1, 2, ...); i is the flat
// row-major index in Keras's layout. A 32-bit integer hash of (i, t) gives u
// in [0, 1) (the same bits as the C++ side's uint32 arithmetic), then the value
// is computed in double and rounded to float32. A hash, not a pattern such as
// i * 7919 mod 1009: weights on a lattice make distinct pooling windows tie to
// within float rounding, where which input wins, and so the gradient, depends
// on the order of a convolution's float sums (tests/keras_reference_test.cpp
// checks that no window of the batch comes that close).
export function hashUniform(i, t) {
  let h = (Math.imul(i, 2654435761) + Math.imul(t, 40503)) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x45d9f3b) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x45d9f3b) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 4294967296;
}

// {name: {shape, data}} for `names` in order (t = 1, 2, ...): kernels
// (u - 0.5) * 2 * sqrt(6 / (fan_in + fan_out)) with fans[layer] = [fan_in,
// fan_out], biases (u - 0.5) * 0.2.
export function formulaWeights(names, shapes, fans) {
  const out = {};
  names.forEach((name, index) => {
    const t = index + 1;
    const shape = shapes[name];
    const count = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    if (name.endsWith('.kernel')) {
      const [fanIn, fanOut] = fans[name.split('.')[0]];
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < count; ++i) data[i] = Math.fround((hashUniform(i, t) - 0.5) * 2 * limit);
    } else {
      for (let i = 0; i < count; ++i) data[i] = Math.fround((hashUniform(i, t) - 0.5) * 0.2);
    }
    out[name] = { shape, data };
  });
  return out;
}

// ---- The fixtures' size rule ------------------------------------------------------
//
// Returns {dump(name, shape, data), written}: a tensor with at most
// `wholeLimit` elements is written whole as NAME.npy; a larger one as
// NAME.every<every>.npy (the flat elements 0, every, 2 * every, ...),
// NAME.sum_last.npy (the sums over the last axis) and NAME.sum_rest.npy (the
// sums over all other axes), the sums taken in float64 and stored as float32.
// Removes the .npy files already in outDir first (its subfolders are left alone).
export function makeDumper(outDir, { wholeLimit = 4096, every = 31 } = {}) {
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of fs.readdirSync(outDir)) if (f.endsWith('.npy')) fs.unlinkSync(path.join(outDir, f));  // no stale files
  const written = [];
  function dump(name, shape, data) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (data.length !== count) throw new Error(`${name}: ${data.length} values for shape (${shape})`);
    const files = [];
    if (count <= wholeLimit) {
      files.push([`${name}.npy`, shape, data]);
    } else {
      const last = shape[shape.length - 1];
      const rows = count / last;
      const sample = new Float32Array(Math.ceil(count / every));
      for (let i = 0, k = 0; i < count; i += every, ++k) sample[k] = data[i];
      const sumLast = new Float32Array(rows);
      const restSums = new Float64Array(last);
      for (let r = 0; r < rows; ++r) {
        let s = 0;  // float64
        for (let c = 0; c < last; ++c) {
          s += data[r * last + c];
          restSums[c] += data[r * last + c];
        }
        sumLast[r] = s;
      }
      files.push([`${name}.every${every}.npy`, [sample.length], sample]);
      files.push([`${name}.sum_last.npy`, shape.slice(0, -1), sumLast]);
      files.push([`${name}.sum_rest.npy`, [last], Float32Array.from(restSums)]);
    }
    for (const [file, s, d] of files) {
      writeNpy(path.join(outDir, file), s, d);
      written.push(file);
    }
  }
  return { dump, written };
}

// The bytes of the plain files in dir (not its subfolders).
export function folderBytes(dir) {
  let total = 0;
  for (const f of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, f));
    if (st.isFile()) total += st.size;
  }
  return total;
}
