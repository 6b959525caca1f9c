import { eachBackend, poisoned } from '../helpers/backends.js';
import { attentionRef, maxScaledError, numel, randn, relL2, rng } from '../helpers/reference.js';

interface Case { title: string; n: number; heads: number; dh: number; dv: number; tq: number; tk: number; scale?: number }

const cases: Case[] = [
  { title: '1 head, head dim 64, Tq != Tk, batch 2', n: 2, heads: 1, dh: 64, dv: 64, tq: 37, tk: 53 },
  { title: '2 heads, head dim 32, batch 2', n: 2, heads: 2, dh: 32, dv: 32, tq: 29, tk: 41 },
  { title: '3 heads, odd head dims (Dh 7, Dv 5), fewer queries than a tile', n: 1, heads: 3, dh: 7, dv: 5, tq: 5, tk: 9 },
  { title: 'blocked path: Tq 300, Tk 290 (several key and query blocks)', n: 1, heads: 1, dh: 64, dv: 64, tq: 300, tk: 290 },
  { title: '2 heads, Tq 1 (one query), explicit scale', n: 2, heads: 2, dh: 16, dv: 16, tq: 1, tk: 70, scale: 0.3 },
];

cases.forEach((c, i) => {
  eachBackend(`attention ${c.title}`, async (t, backend) => {
    const qShape = [c.n, c.heads * c.dh, c.tq], kShape = [c.n, c.heads * c.dh, c.tk], vShape = [c.n, c.heads * c.dv, c.tk];
    const q = randn(numel(qShape), 900 + i), k = randn(numel(kShape), 910 + i), v = randn(numel(vShape), 920 + i);
    const scale = c.scale ?? 1 / Math.sqrt(c.dh);
    const ref = attentionRef(q, qShape, k, v, vShape, c.tk, c.heads, scale);
    const out = poisoned(backend, [c.n, c.heads * c.dv, c.tq]);
    const attrs = c.scale === undefined ? { heads: c.heads } : { heads: c.heads, scale: c.scale };
    await backend.runOp('attention', [backend.tensor(qShape, q), backend.tensor(kShape, k), backend.tensor(vShape, v)], attrs, [out]);
    const got = out.read() as Float32Array;
    const err = relL2(got, ref);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
    t.true(maxScaledError(got, ref, 1e-5, 1e-4) <= 1);
  });
});

eachBackend('attention on one context token returns that token\'s value for every query', async (t, backend) => {
  // The SpatialTransformer's cross-attention on a single conditioning token: softmax over one key is 1.
  const n = 2, heads = 2, dh = 8, dv = 12, tq = 27;
  const q = randn(n * heads * dh * tq, 1, 0, 5), k = randn(n * heads * dh, 2, 0, 5), v = randn(n * heads * dv, 3);
  const out = poisoned(backend, [n, heads * dv, tq]);
  await backend.runOp('attention', [backend.tensor([n, heads * dh, tq], q), backend.tensor([n, heads * dh, 1], k),
    backend.tensor([n, heads * dv, 1], v)], { heads }, [out]);
  const got = out.read() as Float32Array;
  const expected = Array.from({ length: got.length }, (_, idx) => v[Math.floor(idx / tq)]);
  t.deepEqual(Array.from(got), expected);
});

eachBackend('attention with logits far beyond exp\'s range is exact (running-max softmax in fp32)', async (t, backend) => {
  // Small-integer q and k and a power-of-two scale make every score an exact float32, so the
  // float64 reference is the exact answer; the largest scores overflow a naive exp by far.
  const n = 1, dh = 64, tq = 33, tk = 300, scale = 4;
  const r = rng(5);
  const ints = (len: number) => Float32Array.from({ length: len }, () => Math.floor(r() * 7) - 3);
  const q = ints(dh * tq), k = ints(dh * tk), v = randn(dh * tk, 6);
  const ref = attentionRef(q, [n, dh, tq], k, v, [n, dh, tk], tk, 1, scale);
  let maxLogit = -Infinity;
  for (let i = 0; i < tq; i++)
    for (let j = 0; j < tk; j++) {
      let dot = 0;
      for (let c = 0; c < dh; c++) dot += q[c * tq + i] * k[c * tk + j];
      maxLogit = Math.max(maxLogit, scale * dot);
    }
  t.is(Math.fround(Math.exp(maxLogit)), Infinity, `largest logit ${maxLogit} should overflow a naive float exp`);
  const out = poisoned(backend, [n, dh, tq]);
  await backend.runOp('attention', [backend.tensor([n, dh, tq], q), backend.tensor([n, dh, tk], k), backend.tensor([n, dh, tk], v)],
    { heads: 1, scale }, [out]);
  const got = out.read() as Float32Array;
  const err = relL2(got, ref);
  t.true(err <= 1e-5, `relative L2 error ${err}`);
});

eachBackend('attention rejects mismatched shapes and heads by name', async (t, backend) => {
  const q = backend.tensor([1, 8, 5]), k = backend.tensor([1, 8, 7]), v = backend.tensor([1, 6, 7]);
  const y = backend.tensor([1, 6, 5]);
  await t.throwsAsync(backend.runOp('attention', [q, k, v], { heads: 3 }, [y]), { instanceOf: RangeError, message: /argument 'heads' is 3/ });
  await t.throwsAsync(backend.runOp('attention', [q, backend.tensor([1, 4, 7]), v], { heads: 2 }, [y]),
    { instanceOf: RangeError, message: /argument 'k' has shape \[1, 4, 7\], expected \[1, 8, 7\]/ });
  await t.throwsAsync(backend.runOp('attention', [q, k, backend.tensor([1, 6, 6])], { heads: 2 }, [y]),
    { instanceOf: RangeError, message: /argument 'v' has shape \[1, 6, 6\], expected \[1, 6, 7\]/ });
  await t.throwsAsync(backend.runOp('attention', [q, k, v], { heads: 2 }, [backend.tensor([1, 8, 5])]),
    { instanceOf: RangeError, message: /argument 'out' has shape \[1, 8, 5\], expected \[1, 6, 5\]/ });
  await t.throwsAsync(backend.runOp('attention', [q, k, backend.tensor([1, 5, 7])], { heads: 2 }, [y]),
    { instanceOf: RangeError, message: /argument 'v'.*5 channels do not split into 2 heads/ });
  await t.throwsAsync(backend.runOp('attention', [q, k, v], { heads: 2, scale: Infinity }, [y]), { instanceOf: RangeError, message: /argument 'scale'/ });
  await t.throwsAsync(backend.runOp('attention', [q, k, v], { heads: 1.5 }, [y]), { instanceOf: RangeError, message: /attribute 'heads' must be an integer/ });
});
