/**
 * MONAI networks on a brain-ldm backend: the graph lives in the C++ core
 * (native/core/nets), built from a bundle's network description and weights;
 * TypeScript hands over inputs by name and gets outputs by name.
 */
import { readBundle, type NetworkSpec } from '../bundle/model-bundle.js';
import type { HostTensor } from '../io/safetensors.js';
import type { Backend, NetworkHandle } from '../backend/types.js';
import { loadBackend } from '../backend/select.js';
import { networkSpecText } from './network-spec.js';

export type { NetworkHandle, NetworkStats, NetworkTensor, NetworkTensors } from '../backend/types.js';

/** Builds the network of `spec` with `weights` on `backend`; errors name the missing/extra key and both shapes. */
export async function createNetwork(backend: Backend, spec: NetworkSpec, weights: ReadonlyMap<string, HostTensor>): Promise<NetworkHandle> {
  return backend.createNetwork(networkSpecText(spec), weights);
}

/** Loads a bundle directory (model.json + weights.safetensors) onto `backend`. */
export async function loadNetwork(backend: Backend, bundleDir: string): Promise<{ network: NetworkHandle; spec: NetworkSpec }> {
  const bundle = await readBundle(bundleDir);
  const network = await createNetwork(backend, bundle.config.network, bundle.weights);
  return { network, spec: bundle.config.network };
}

/** The importer's check: the weights must build the network exactly (no missing, extra or mis-shaped key). */
export async function validateNetworkWeights(spec: NetworkSpec, weights: ReadonlyMap<string, HostTensor>): Promise<void> {
  const backend = await loadBackend({});
  try {
    const network = await createNetwork(backend, spec, weights);
    await network.dispose();
  } finally {
    await backend.dispose();
  }
}
