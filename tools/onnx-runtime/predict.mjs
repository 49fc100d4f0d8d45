// Runs an ONNX model exported by the course (nn::export_onnx) with ONNX
// Runtime's CPU execution provider on every test image of an MNIST folder,
// and writes the probabilities as a (N, 10) float32 .npy file.
//
//   tools/onnx-runtime/run predict.mjs MODEL.onnx DATA_DIR OUT.npy
//
// The images are read from DATA_DIR/t10k-images-idx3-ubyte and scaled to
// [0, 1] as the course's images_to_tensor does (chapter 02): x / 255, shape
// (N, 28, 28, 1), channels last, the graph's "input".
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

function fail(message) {
  process.stderr.write(`predict.mjs: error: ${message}\n`);
  process.exit(1);
}

if (process.argv.length !== 5) fail('usage: predict.mjs MODEL.onnx DATA_DIR OUT.npy');
const [modelPath, dataDir, outPath] = process.argv.slice(2);

// An IDX file of unsigned bytes (magic 0x0803 for images): its shape and data.
function readIdx(file) {
  let bytes;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    fail(`${file}: cannot read it (${e.code})`);
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08) fail(`${file}: not an IDX file of bytes`);
  const rank = bytes[3];
  const shape = [];
  for (let i = 0; i < rank; ++i) shape.push(bytes.readUInt32BE(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length !== start + count) fail(`${file}: ${bytes.length - start} bytes of data for shape ${shape}`);
  return { shape, data: bytes.subarray(start) };
}

// A little-endian float32 .npy (format 1.0) of the given shape.
function npyBytes(values, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

const images = readIdx(join(dataDir, 't10k-images-idx3-ubyte'));
if (images.shape.length !== 3 || images.shape[1] !== 28 || images.shape[2] !== 28)
  fail(`${dataDir}: the test images have shape (${images.shape}), not (N, 28, 28)`);
const n = images.shape[0];
let session;
try {
  session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
} catch (e) {
  fail(`${modelPath}: ONNX Runtime cannot load it: ${e.message}`);
}
const batch = 1000;
let classes = 0;
let probabilities;
for (let first = 0; first < n; first += batch) {
  const count = Math.min(batch, n - first);
  const x = new Float32Array(count * 784);
  for (let i = 0; i < x.length; ++i) x[i] = images.data[first * 784 + i] / 255;
  const out = await session.run({ input: new ort.Tensor('float32', x, [count, 28, 28, 1]) });
  const p = out.probabilities;
  if (!probabilities) {
    classes = p.dims[1];
    probabilities = new Float32Array(n * classes);
  }
  probabilities.set(p.data, first * classes);
}
const temporary = `${outPath}.partial`;
writeFileSync(temporary, npyBytes(probabilities, [n, classes]));
renameSync(temporary, outPath);  // whole or not at all
console.log(`ONNX Runtime ${ort.env.versions?.common ?? ''} (CPU): ${n} images through ${modelPath} -> ${outPath}`);
