// Runs an ONNX model exported by `onnas export` in ONNX Runtime (onnxruntime-node) on
// the first images of an IDX image file and compares its logits with `onnas eval --out`'s.
//   node onnx_compare.js NET.onnx IMAGES-idx3-ubyte[.gz] PREDICTIONS.jsonl [TOLERANCE]
// Exits 1 when a logit differs by more than TOLERANCE * (1 + |logit|) or a predicted
// class differs; prints the largest difference.
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

async function main() {
  const [model, imagesPath, predictionsPath, tol = '1e-4'] = process.argv.slice(2);
  const tolerance = Number(tol);
  const expected = fs.readFileSync(predictionsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  let raw = fs.readFileSync(imagesPath);
  if (imagesPath.endsWith('.gz')) raw = zlib.gunzipSync(raw);
  const count = raw.readUInt32BE(4), h = raw.readUInt32BE(8), w = raw.readUInt32BE(12);
  const n = expected.length;
  if (n > count) throw new Error(`${predictionsPath} has ${n} images, ${imagesPath} ${count}`);
  // Pixels in [0, 1], as onnas reads them (p / 255 in float); the model normalizes itself.
  const pixels = new Float32Array(n * h * w);
  for (let i = 0; i < n * h * w; ++i) pixels[i] = Math.fround(raw[16 + i] * Math.fround(1 / 255));
  const session = await ort.InferenceSession.create(model);
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', pixels, [n, 1, h, w]);
  const result = await session.run(feeds);
  const logits = result[session.outputNames[0]].data;
  const k = expected[0].logits.length;
  let worst = 0, worstAt = '', classes = 0;
  for (let i = 0; i < n; ++i) {
    let best = 0;
    for (let j = 0; j < k; ++j) {
      const got = logits[i * k + j], want = expected[i].logits[j];
      const d = Math.abs(got - want) / (1 + Math.abs(want));
      if (d > worst) worst = d, worstAt = `image ${i} class ${j}: onnxruntime ${got}, onnas ${want}`;
      if (logits[i * k + j] > logits[i * k + best]) best = j;
    }
    if (best !== expected[i].predicted) ++classes;
  }
  console.log(`onnx_compare: ${n} images, ${k} classes: largest relative difference ${worst.toExponential(2)}` +
              (worstAt ? ` (${worstAt})` : '') + `; ${classes} predicted classes differ`);
  process.exit(worst <= tolerance && classes === 0 ? 0 : 1);
}
main().catch((e) => { console.error(`onnx_compare: ${e.message}`); process.exit(1); });
