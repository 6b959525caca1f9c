export type {
  Backend, BackendInfo, BackendName, BackendOptions, BackendRequest, Conv3dOptions, DType, DeviceTensor,
  GroupNormOptions, OutOption, Triple,
} from './backend/types.js';
export { AUTO_ORDER } from './backend/types.js';
export { loadBackend, createBackend, probeBackends, BackendUnavailableError } from './backend/select.js';
export { NativeBackend } from './backend/native-backend.js';
export { planMemory } from './backend/memory-plan.js';
export type { BufferLifetime, MemoryPlan } from './backend/memory-plan.js';
