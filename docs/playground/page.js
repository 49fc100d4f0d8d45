// The playground's page: a drawing read by the course's model, compiled to
// WebAssembly with the library's own sources (wasm/playground_api.cpp).
//
// Nothing here computes: the page hands the drawing's pixels to the C API
// (which prepares them like an MNIST digit and runs the model) and draws what
// comes back: the 28x28 input, the probabilities, the 32 Conv2D maps after
// ReLU, the 32 pooled maps and the 100 Dense activations.
//
// Query options: ?weights=FOLDER (default "weights"), the folder ch10-fit saved
// (scripts/playground.sh copies it next to this page).
'use strict';

const params = new URLSearchParams(location.search);
const weightsFolder = params.get('weights') || 'weights';
const sampleImages = 'samples/t10k-first-100-images-idx3-ubyte';
const sampleLabels = 'samples/t10k-first-100-labels-idx1-ubyte';

const $ = (id) => document.getElementById(id);

// What the page shows, also read by the browser test (tests/playground/browser_test.py).
const playground = {
  status: 'loading',   // 'loading', 'ready' or 'error'
  error: '',
  probabilities: null, // the last (10,) softmax output, as numbers
  predicted: null,     // its argmax
  showSample: null,
  clear: null,
  timeForward: null,
};
window.playground = playground;

function showError(message) {
  playground.status = 'error';
  playground.error = message;
  $('error').textContent = message;
  $('error').classList.add('shown');
  $('status').textContent = 'The playground cannot run (see the message above).';
  $('draw').classList.add('disabled');
  for (const id of ['clear', 'random']) $(id).disabled = true;
}

async function fetchBytes(url, what) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`${url}: cannot fetch ${what} (${e.message})`);
  }
  if (!response.ok) throw new Error(`${url}: cannot fetch ${what}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

// ---------------------------------------------------------------------------
// The module and its weights

let wasm = null;  // the Emscripten module
let api = null;

async function loadModule() {
  if (typeof createPlayground !== 'function')
    throw new Error('nn_playground.js did not load: build the WebAssembly module and serve the page with ' +
                    'scripts/playground.sh (it copies nn_playground.js and nn_playground.wasm next to this page).');
  // A module that cannot start (no .wasm, a bad one) aborts: say so on the
  // page whether or not the loader's promise is rejected too.
  const failed = (what) => new Error(`nn_playground.wasm did not start: ${what} (scripts/playground.sh builds it)`);
  return createPlayground({
    print: (text) => console.log(text),
    printErr: (text) => console.warn(text),
    onAbort: (what) => showError(failed(what).message),
  }).catch((e) => { throw failed(e.message || e); });
}

// Copies the weights folder (manifest.txt and the files it lists) into the
// module's file system, then loads it with Sequential::load, which checks the
// manifest's sizes and CRC-32s, every shape and every value.
async function loadWeights() {
  const manifestBytes = await fetchBytes(`${weightsFolder}/manifest.txt`, 'the weights\' manifest');
  const manifest = new TextDecoder().decode(manifestBytes);
  const files = manifest.split('\n').filter((line) => line.startsWith('file ')).map((line) => line.split(/\s+/)[1]);
  const dir = '/weights';
  wasm.FS.mkdir(dir);
  wasm.FS.writeFile(`${dir}/manifest.txt`, manifestBytes);
  for (const file of files) {
    if (!/^[A-Za-z0-9_.-]+$/.test(file)) throw new Error(`${weightsFolder}/manifest.txt: lists a file named '${file}'`);
    wasm.FS.writeFile(`${dir}/${file}`, await fetchBytes(`${weightsFolder}/${file}`, 'a weight file'));
  }
  if (api.loadWeights(dir) !== 0) throw new Error(`The weights in ${weightsFolder}/ are not usable: ${api.lastError()}`);
  return files.length;
}

// The committed sample: the first 100 images of MNIST's test set, as IDX files
// (chapter 01's format): a big-endian header, then one byte per pixel or label.
let samples = null;

async function loadSamples() {
  const images = await fetchBytes(sampleImages, 'the sample test images');
  const labels = await fetchBytes(sampleLabels, 'the sample labels');
  const be32 = (bytes, at) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, false);
  if (images.length < 16 || be32(images, 0) !== 0x803 || be32(images, 8) !== 28 || be32(images, 12) !== 28)
    throw new Error(`${sampleImages}: not an IDX file of 28x28 images`);
  const count = be32(images, 4);
  if (images.length !== 16 + count * 784) throw new Error(`${sampleImages}: ${images.length} bytes, not 16 + ${count}·784`);
  if (labels.length !== 8 + count || be32(labels, 0) !== 0x801 || be32(labels, 4) !== count)
    throw new Error(`${sampleLabels}: not the IDX labels of ${count} images`);
  return { count, image: (i) => images.subarray(16 + i * 784, 16 + (i + 1) * 784), label: (i) => labels[8 + i] };
}

// ---------------------------------------------------------------------------
// Showing the results

function grey(canvas, values, offset, stride, count, scale) {
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < count; ++i) {
    const v = Math.round(255 * Math.min(1, values[offset + i * stride] / scale));
    image.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
}

function makeCanvases(parent, n, size) {
  const list = [];
  for (let c = 0; c < n; ++c) {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = size;
    canvas.title = `channel ${c}`;
    parent.appendChild(canvas);
    list.push(canvas);
  }
  return list;
}

let convCanvases = [], poolCanvases = [], barCells = [];

function buildResultViews() {
  convCanvases = makeCanvases($('conv'), 32, 26);
  poolCanvases = makeCanvases($('pool'), 32, 13);
  for (let d = 0; d < 10; ++d) {
    const label = document.createElement('span');
    label.textContent = d;
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.appendChild(document.createElement('div'));
    const value = document.createElement('span');
    $('bars').append(label, bar, value);
    barCells.push({ bar, value });
  }
}

function maxOf(values) { let m = 0; for (const v of values) m = Math.max(m, v); return m || 1; }

function showResults(input) {
  grey($('small'), input, 0, 1, 784, 255);
  const p = Array.from(api.view(api.probabilities(), 10));
  const predicted = p.indexOf(Math.max(...p));
  barCells.forEach(({ bar, value }, d) => {
    bar.firstChild.style.width = `${(100 * p[d]).toFixed(1)}%`;
    bar.classList.toggle('top', d === predicted);
    value.textContent = `${(100 * p[d]).toFixed(1)} %`;
  });
  $('prediction').textContent = String(predicted);
  const conv = api.view(api.conv(), 26 * 26 * 32);    // (26, 26, 32): channel c at c, c + 32, ...
  const pool = api.view(api.pooled(), 13 * 13 * 32);  // (13, 13, 32)
  const dense = api.view(api.dense(), 100);
  const convMax = maxOf(conv), poolMax = maxOf(pool);
  convCanvases.forEach((canvas, c) => grey(canvas, conv, c, 32, 26 * 26, convMax));
  poolCanvases.forEach((canvas, c) => grey(canvas, pool, c, 32, 13 * 13, poolMax));
  grey($('dense'), dense, 0, 1, 100, maxOf(dense));
  playground.probabilities = p;
  playground.predicted = predicted;
}

function showNothing() {
  for (const canvas of [$('small'), $('dense'), ...convCanvases, ...poolCanvases])
    canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  barCells.forEach(({ bar, value }) => { bar.firstChild.style.width = '0'; bar.classList.remove('top'); value.textContent = ''; });
  $('prediction').textContent = '';
  playground.probabilities = null;
  playground.predicted = null;
}

// One forward pass of pg_input's 784 bytes, with the activations, shown.
function predictInput() {
  if (api.predict(1) !== 0) throw new Error(`pg_predict: ${api.lastError()}`);
  showResults(wasm.HEAPU8.slice(api.input(), api.input() + 784));
}

function predict(image) {
  wasm.HEAPU8.set(image, api.input());
  predictInput();
}

// The time of one forward pass (pg_predict(0): model.predict on one image, what
// ch11-predict --time-inference calls "predict warm"). The browser coarsens
// performance.now() (to 0.1 ms here, without cross-origin isolation), so each
// measurement times `calls` passes together; the median of `rounds` is kept.
function timeForward(calls = 200, rounds = 7) {
  const perCall = [];
  api.predict(0);  // warm
  for (let r = 0; r < rounds; ++r) {
    const t0 = performance.now();
    for (let i = 0; i < calls; ++i) api.predict(0);
    perCall.push((performance.now() - t0) / calls);
  }
  perCall.sort((a, b) => a - b);
  const ms = perCall[Math.floor(rounds / 2)];
  $('timing').textContent = `one forward pass: ${(1000 * ms).toFixed(0)} µs ` +
    `(model.predict on one image; median of ${rounds} × ${calls} passes, performance.now())`;
  return ms;
}

// ---------------------------------------------------------------------------
// Drawing

const draw = $('draw');
const pen = draw.getContext('2d', { willReadFrequently: true });
let drawing = false, last = null, pending = false;

function clearCanvas() {
  pen.fillStyle = '#000';
  pen.fillRect(0, 0, draw.width, draw.height);
}

function point(event) {
  const r = draw.getBoundingClientRect();
  return { x: (event.clientX - r.left) * (draw.width / r.width), y: (event.clientY - r.top) * (draw.height / r.height) };
}

function stroke(from, to) {
  pen.strokeStyle = '#fff';
  pen.lineWidth = 24;
  pen.lineCap = 'round';
  pen.lineJoin = 'round';
  pen.beginPath();
  pen.moveTo(from.x, from.y);
  pen.lineTo(to.x, to.y);
  pen.stroke();
}

// The drawing, prepared the way MNIST's digits were (the ink scaled into a
// 20x20 box, centred by its centre of mass in 28x28) by the library's
// nn::prepare_like_mnist, then read.
function updateFromDrawing() {
  pending = false;
  const rgba = pen.getImageData(0, 0, draw.width, draw.height).data;
  const room = api.drawing(draw.width, draw.height);
  if (!room) throw new Error(`pg_drawing: ${api.lastError()}`);
  const ink = wasm.HEAPU8.subarray(room, room + draw.width * draw.height);
  for (let i = 0; i < ink.length; ++i) ink[i] = rgba[4 * i];  // white on black: the red channel
  const prepared = api.inputFromDrawing();
  if (prepared < 0) throw new Error(`pg_input_from_drawing: ${api.lastError()}`);
  if (prepared === 1) predictInput(); else showNothing();
}

function scheduleUpdate() {
  if (!pending) { pending = true; requestAnimationFrame(guard(updateFromDrawing)); }
}

function guard(f) {
  return (...args) => { try { f(...args); } catch (e) { showError(e.message || String(e)); } };
}

function enableDrawing() {
  draw.addEventListener('pointerdown', guard((event) => {
    if (playground.status !== 'ready') return;
    draw.setPointerCapture(event.pointerId);
    drawing = true;
    last = point(event);
    $('source').textContent = 'your drawing';
    stroke(last, last);
    scheduleUpdate();
  }));
  draw.addEventListener('pointermove', guard((event) => {
    if (!drawing) return;
    const p = point(event);
    stroke(last, p);
    last = p;
    scheduleUpdate();
  }));
  const end = guard(() => { if (drawing) { drawing = false; updateFromDrawing(); } });
  draw.addEventListener('pointerup', end);
  draw.addEventListener('pointercancel', end);
}

// A test image, drawn on the canvas 10 times larger, and read exactly as it is
// (its own 784 bytes, not the canvas reduced again).
function showSample(i) {
  const image = samples.image(i);
  clearCanvas();
  for (let y = 0; y < 28; ++y)
    for (let x = 0; x < 28; ++x) {
      const v = image[y * 28 + x];
      pen.fillStyle = `rgb(${v},${v},${v})`;
      pen.fillRect(10 * x, 10 * y, 10, 10);
    }
  $('source').textContent = `x_test[${i}], labelled ${samples.label(i)}`;
  predict(image);
}

async function start() {
  buildResultViews();
  clearCanvas();
  wasm = await loadModule();
  api = {
    loadWeights: (dir) => wasm.ccall('pg_load_weights', 'number', ['string'], [dir]),
    lastError: () => wasm.UTF8ToString(wasm._pg_last_error()),
    input: () => wasm._pg_input(),
    drawing: (width, height) => wasm._pg_drawing(width, height),
    inputFromDrawing: () => wasm._pg_input_from_drawing(),
    predict: (withActivations) => wasm._pg_predict(withActivations),
    probabilities: () => wasm._pg_probabilities(),
    conv: () => wasm._pg_conv_relu(),
    pooled: () => wasm._pg_pooled(),
    dense: () => wasm._pg_dense(),
    view: (pointer, n) => wasm.HEAPF32.subarray(pointer / 4, pointer / 4 + n),
  };
  $('status').textContent = `Loading the weights from ${weightsFolder}/…`;
  const files = await loadWeights();
  samples = await loadSamples();
  playground.showSample = showSample;
  playground.clear = () => { clearCanvas(); $('source').innerHTML = '&nbsp;'; showNothing(); };
  playground.timeForward = timeForward;
  $('clear').addEventListener('click', guard(playground.clear));
  $('random').addEventListener('click', guard(() => showSample(Math.floor(Math.random() * samples.count))));
  enableDrawing();
  playground.status = 'ready';
  $('status').textContent = `Ready: the weights of ${weightsFolder}/ (${files} files). Draw a digit with the mouse ` +
    'or a finger, or pick a random test digit.';
  showSample(0);
  timeForward();
}

start().catch((e) => showError(e.message || String(e)));
