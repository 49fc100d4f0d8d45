// Runs the WebAssembly playground module in node and compares its
// probabilities with the native ch11-predict's for the first test images.
//
//   node wasm/node_test.cjs BUILD_WASM_BIN WEIGHTS_DIR MNIST_DIR NATIVE_PROBABILITIES.npy [IMAGES]
//
// NATIVE_PROBABILITIES.npy: build/bin/ch11-predict --load WEIGHTS_DIR --probabilities FILE
// (the test set's (10000, 10) probabilities). Exits 1 when any differs by more than 1e-5.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [bin, weightsDir, mnistDir, nativeNpy, countArg] = process.argv.slice(2);
if (!nativeNpy) {
  console.error('usage: node wasm/node_test.cjs BUILD_WASM_BIN WEIGHTS_DIR MNIST_DIR NATIVE_PROBABILITIES.npy [IMAGES]');
  process.exit(2);
}
const count = Number(countArg || 3);
const tolerance = 1e-5;

function readMaybeGzip(file) {
  if (fs.existsSync(file)) {
    const bytes = fs.readFileSync(file);
    return bytes[0] === 0x1f && bytes[1] === 0x8b ? zlib.gunzipSync(bytes) : bytes;
  }
  return zlib.gunzipSync(fs.readFileSync(file + '.gz'));
}

// The float32 values of a little-endian .npy file (format 1.0), and its header.
function readNpy(file) {
  const bytes = fs.readFileSync(file);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  if (!header.includes("'<f4'")) throw new Error(`${file}: not float32: ${header}`);
  const data = bytes.subarray(10 + headerLength);
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
}

async function main() {
  const createPlayground = require(path.resolve(bin, 'playground.js'));
  // The .wasm bytes handed over: Emscripten 3.1.6's loader fetch()es a file path
  // when node has a global fetch (node 18 and later), which fails.
  const m = await createPlayground({ wasmBinary: fs.readFileSync(path.join(bin, 'playground.wasm')) });
  const call = (name, ...args) => m['_' + name](...args);

  m.FS.mkdir('/weights');
  for (const file of fs.readdirSync(weightsDir)) m.FS.writeFile('/weights/' + file, fs.readFileSync(path.join(weightsDir, file)));
  const dirPtr = m.stringToNewUTF8 ? m.stringToNewUTF8('/weights') : null;
  const rc = dirPtr !== null ? call('pg_load_weights', dirPtr) : m.ccall('pg_load_weights', 'number', ['string'], ['/weights']);
  if (rc !== 0) throw new Error('pg_load_weights: ' + m.UTF8ToString(call('pg_last_error')));

  const images = readMaybeGzip(path.join(mnistDir, 't10k-images-idx3-ubyte'));  // 16-byte header, then 28x28 bytes each
  const native = readNpy(nativeNpy);
  let worst = 0;
  for (let i = 0; i < count; ++i) {
    m.HEAPU8.set(images.subarray(16 + i * 784, 16 + (i + 1) * 784), call('pg_input'));
    if (call('pg_predict', 1) !== 0) throw new Error('pg_predict: ' + m.UTF8ToString(call('pg_last_error')));
    const p = m.HEAPF32.subarray(call('pg_probabilities') / 4, call('pg_probabilities') / 4 + 10);
    const expected = native.subarray(i * 10, i * 10 + 10);
    let diff = 0;
    for (let k = 0; k < 10; ++k) diff = Math.max(diff, Math.abs(p[k] - expected[k]));
    worst = Math.max(worst, diff);
    const digit = p.indexOf(Math.max(...p));
    console.log(`test image ${i}: digit ${digit} (p ${p[digit].toFixed(6)}), max |wasm - native| = ${diff.toExponential(2)}`);
    const dense = m.HEAPF32.subarray(call('pg_dense') / 4, call('pg_dense') / 4 + 100);
    const pooled = m.HEAPF32.subarray(call('pg_pooled') / 4, call('pg_pooled') / 4 + 13 * 13 * 32);
    const conv = m.HEAPF32.subarray(call('pg_conv_relu') / 4, call('pg_conv_relu') / 4 + 26 * 26 * 32);
    if (Math.min(...dense) < 0 || Math.min(...conv) < 0) throw new Error('ReLU outputs below 0');
    // Pooled (y, x, c) is the max of the conv's 2x2 window: a check that the buffers are the layers' outputs.
    for (const [y, x, c] of [[0, 0, 0], [6, 7, 5], [12, 12, 31]]) {
      let mx = -Infinity;
      for (let dy = 0; dy < 2; ++dy) for (let dx = 0; dx < 2; ++dx) mx = Math.max(mx, conv[((2 * y + dy) * 26 + 2 * x + dx) * 32 + c]);
      if (mx !== pooled[(y * 13 + x) * 32 + c]) throw new Error(`pooled (${y}, ${x}, ${c}) is not the max of its window`);
    }
  }

  // Time: the median of 200 calls, probabilities only (as model.predict on one image), and with the activations.
  for (const withActivations of [0, 1]) {
    const times = [];
    for (let r = 0; r < 200; ++r) {
      const t0 = performance.now();
      call('pg_predict', withActivations);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(`pg_predict(${withActivations}): median ${(times[100] * 1000).toFixed(0)} us over 200 calls`);
  }
  const wasmBytes = fs.statSync(path.join(bin, 'playground.wasm')).size;
  const jsBytes = fs.statSync(path.join(bin, 'playground.js')).size;
  console.log(`playground.wasm ${wasmBytes} bytes, playground.js ${jsBytes} bytes`);
  console.log(worst <= tolerance ? `PASS: max difference ${worst.toExponential(2)} <= ${tolerance}` : `FAIL: max difference ${worst.toExponential(2)} > ${tolerance}`);
  process.exit(worst <= tolerance ? 0 : 1);
}
main().catch(e => { console.error(e); process.exit(1); });
