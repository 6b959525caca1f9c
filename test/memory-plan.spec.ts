import test from 'ava';
import { planMemory, type BufferLifetime } from '../ts/backend/memory-plan.js';
import { rng } from './helpers/reference.js';

test('planned buffers with overlapping lifetimes never share bytes, others reuse memory', (t) => {
  const r = rng(5);
  const buffers: BufferLifetime[] = Array.from({ length: 200 }, () => {
    const first = Math.floor(r() * 100);
    return { bytes: 1 + Math.floor(r() * 100000), firstUse: first, lastUse: first + Math.floor(r() * 10) };
  });
  const plan = planMemory(buffers, 64);
  t.is(plan.offsets.length, buffers.length);
  for (let i = 0; i < buffers.length; i++) {
    t.is(plan.offsets[i] % 64, 0);
    t.true(plan.offsets[i] + buffers[i].bytes <= plan.totalBytes);
    for (let j = i + 1; j < buffers.length; j++) {
      const live = buffers[i].firstUse <= buffers[j].lastUse && buffers[j].firstUse <= buffers[i].lastUse;
      const disjoint = plan.offsets[i] + buffers[i].bytes <= plan.offsets[j] || plan.offsets[j] + buffers[j].bytes <= plan.offsets[i];
      if (live && !disjoint) t.fail(`buffers ${i} and ${j} are live together and overlap`);
    }
  }
  const sum = buffers.reduce((s, b) => s + b.bytes, 0);
  // Peak live bytes is a lower bound; the greedy plan should land near it and far below the sum.
  let peak = 0;
  for (let step = 0; step < 110; step++)
    peak = Math.max(peak, buffers.filter((b) => b.firstUse <= step && step <= b.lastUse).reduce((s, b) => s + b.bytes, 0));
  t.true(plan.totalBytes >= peak);
  t.true(plan.totalBytes < sum / 3, `plan ${plan.totalBytes} vs sum ${sum}`);
  t.true(plan.totalBytes <= peak * 1.5, `plan ${plan.totalBytes} vs live peak ${peak}`);
});

test('a chain of buffers ping-pongs between two slots', (t) => {
  const chain = Array.from({ length: 10 }, (_, i) => ({ bytes: 1000, firstUse: i, lastUse: i + 1 }));
  const plan = planMemory(chain, 64);
  t.is(plan.totalBytes, 2 * 1024);
});

test('planMemory rejects inverted lifetimes and bad fields', (t) => {
  t.throws(() => planMemory([{ bytes: 10, firstUse: 3, lastUse: 1 }]), { instanceOf: RangeError, message: /buffer 0 has last_use 1 before first_use 3/ });
  t.throws(() => planMemory([{ bytes: -1, firstUse: 0, lastUse: 1 }]), { instanceOf: RangeError, message: /buffers\[0\]\.bytes/ });
  t.throws(() => planMemory('x' as never), { instanceOf: TypeError, message: /argument 'buffers'/ });
});
