// Quick checks of common.mjs without tfjs work: node selftest.mjs (npm test)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { npyHeader, encodeNpy, decodeNpy, crc32, tableCrc32, saveWeightsFolder, loadWeightsFolder, kWeightNames, kWeightShapes } from './common.mjs';

// The header nn::npy_header writes: rank 1 with a trailing comma, data at a multiple of 64 bytes.
assert.equal(npyHeader([10]).trimEnd(), "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }");
assert.equal(npyHeader([3, 3, 1, 32]).trimEnd(), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 1, 32), }");
for (const shape of [[1], [10], [3, 3, 1, 32], [5408, 100], [32, 26, 26, 32]]) {
  assert.equal((10 + npyHeader(shape).length) % 64, 0);
  assert.ok(npyHeader(shape).endsWith('\n'));
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i) * 1e3));
  const back = decodeNpy(encodeNpy(shape, data), 'round trip');
  assert.deepEqual(back.shape, shape);
  assert.deepEqual(back.data, data);
}
assert.throws(() => decodeNpy(Buffer.from('not npy'), 'x'), /not a \.npy file/);

// The table CRC (used where zlib.crc32 is missing) against zlib's.
const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37 + 11) & 0xff));
assert.equal(tableCrc32(Buffer.from('123456789')), 0xcbf43926);  // the CRC-32 check value
assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
assert.equal(crc32(bytes), tableCrc32(bytes));

// A weights folder round trip, and a changed file is caught.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keras-reference-selftest-'));
try {
  const weights = {};
  for (const name of kWeightNames) {
    const n = kWeightShapes[name].reduce((a, b) => a * b, 1);
    weights[name] = { shape: kWeightShapes[name], data: Float32Array.from({ length: n }, (_, i) => Math.fround(i / n - 0.5)) };
  }
  saveWeightsFolder(dir, weights, 7);
  const loaded = loadWeightsFolder(dir);
  assert.equal(loaded.epoch, 7);
  for (const name of kWeightNames) assert.deepEqual(loaded.weights[name].data, weights[name].data);
  const f = path.join(dir, 'dense_1.bias.npy');
  const b = fs.readFileSync(f);
  b[b.length - 1] ^= 1;
  fs.writeFileSync(f, b);
  assert.throws(() => loadWeightsFolder(dir), /does not match the manifest/);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log('selftest: all checks passed');
