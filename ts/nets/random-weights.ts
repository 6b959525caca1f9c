/**
 * Seeded random weights for any network the core builds, in the exact layout MONAI saves (the core lists the keys
 * and shapes; backend.networkWeightShapes). For tests, benchmarks and smoke runs that need a real network of a given
 * size without a training run: the values follow PyTorch's default initialisation closely enough (uniform in
 * +-1/sqrt(fan_in) for convolution/linear weights and biases, 1 and 0 for normalisation scales and shifts, N(0, 1)
 * for embeddings) that activations stay in range through deep stacks.
 */
import type { Backend } from '../backend/types.js';
import type { NetworkSpec } from '../bundle/model-bundle.js';
import type { HostTensor } from '../io/safetensors.js';
import { seededRandom } from '../random/seeded-random.js';
import { networkSpecText } from './network-spec.js';

const NORM_PARAM = /(^|\.)(norm\d*|norm_\w+|gn|ln\d*|group_norm|layer_norm)\.(weight|bias)$/;

export async function randomNetworkWeights(backend: Backend, spec: NetworkSpec, seed: number): Promise<Map<string, HostTensor>> {
  const layout = await backend.networkWeightShapes(networkSpecText(spec));
  const shapes = new Map(layout);
  const out = new Map<string, HostTensor>();
  for (const [name, shape] of layout) {
    const rng = seededRandom(seed, 'weights', name);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('embedding.weight')) for (let i = 0; i < n; i++) data[i] = rng.normal();
    else if (NORM_PARAM.test(name) || (shape.length === 1 && name.endsWith('.weight'))) data.fill(name.endsWith('.weight') ? 1 : 0);
    else {
      // A bias takes the fan_in of its layer's weight, as torch's Linear/Conv reset_parameters does.
      const w = name.endsWith('.bias') ? shapes.get(`${name.slice(0, -5)}.weight`) : shape;
      const fanIn = w && w.length >= 2 ? w.slice(1).reduce((a, b) => a * b, 1) : shape[0];
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < n; i++) data[i] = rng.uniform(-bound, bound);
    }
    out.set(name, { dtype: 'F32', shape: [...shape], data });
  }
  return out;
}
