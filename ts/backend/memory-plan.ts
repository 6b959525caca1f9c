/**
 * Buffer offsets for a network's activations, computed once before the first
 * step (native/core/memory_plan.cpp). Networks use it to size one arena, so a
 * denoising step allocates nothing.
 */
import { loadNativeAddon } from './native-binding.js';
import { describe } from './validate.js';

export interface BufferLifetime {
  bytes: number;
  /** Index of the first op that writes the buffer. */
  firstUse: number;
  /** Index of the last op that reads it (inclusive). */
  lastUse: number;
}

export interface MemoryPlan {
  offsets: number[];
  totalBytes: number;
}

export function planMemory(buffers: readonly BufferLifetime[], alignment = 64): MemoryPlan {
  if (!Array.isArray(buffers)) throw new TypeError(`planMemory: argument 'buffers' must be an array, got ${describe(buffers)}`);
  buffers.forEach((b, i) => {
    for (const key of ['bytes', 'firstUse', 'lastUse'] as const)
      if (typeof b?.[key] !== 'number' || !Number.isInteger(b[key]) || b[key] < 0)
        throw new RangeError(`planMemory: buffers[${i}].${key} must be a non-negative integer, got ${describe(b?.[key])}`);
  });
  return loadNativeAddon().addon.planMemory(buffers, alignment);
}
