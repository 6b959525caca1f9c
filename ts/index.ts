export type {
  Backend, BackendInfo, BackendName, BackendOptions, BackendRequest, Conv3dOptions, DType, DeviceTensor,
  GroupNormOptions, OutOption, Triple,
} from './backend/types.js';
export { AUTO_ORDER } from './backend/types.js';
export { loadBackend, createBackend, probeBackends, BackendUnavailableError } from './backend/select.js';
export { NativeBackend } from './backend/native-backend.js';
export { planMemory } from './backend/memory-plan.js';
export type { BufferLifetime, MemoryPlan } from './backend/memory-plan.js';

// MONAI networks from bundles and checkpoints
export { createNetwork, loadNetwork, validateNetworkWeights } from './nets/network.js';
export type { NetworkHandle, NetworkStats, NetworkTensor, NetworkTensors } from './nets/network.js';
export { networkSpecText } from './nets/network-spec.js';
export { readBundle, writeBundle } from './bundle/model-bundle.js';
export type { BundleConfig, ModelBundle, NetworkSpec } from './bundle/model-bundle.js';
export { importCheckpoint } from './bundle/import-checkpoint.js';
export { readTorchCheckpoint, extractStateDict } from './io/torch-checkpoint.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';

// Schedulers (MONAI formulas) and DPM-Solver++
export { createScheduler, schedulerConfigFromMonai, DdpmScheduler, DdimScheduler, PndmScheduler, DpmSolverMultistepScheduler } from './schedulers/index.js';
export type { Scheduler, SchedulerConfigInput } from './schedulers/index.js';

// NIfTI and SynthSeg label maps
export { readNifti, writeNifti } from './io/nifti.js';
export { SYNTHSEG_LABELS, VENTRICLE_LABELS, mapToSynthSeg } from './labels/synthseg-labels.js';
export { readLabelVolume, reorient, resampleNearest, cropAroundBrain, ventricleVolumeMl, intracranialVolumeMl } from './labels/label-volume.js';
export { prepareLabelMap, THESIS_GRID, REDUCED_GRID } from './labels/prepare-label-maps.js';

// Label-map augmentation: ventricle enlargement, SynthSeg-style spatial augmentation, augmented copies
export { enlargeVentricles, createVentricleEnlarger } from './augment/ventricle-enlargement.js';
export type { VentricleEnlargementResult, VentricleEnlargementOptions, VentricleEnlarger } from './augment/ventricle-enlargement.js';
export { drawSpatialAugmentation, applySpatialAugmentation, flipLeftRight } from './augment/spatial-augmentation.js';
export type { SpatialAugmentationOptions, SpatialAugmentationParameters } from './augment/spatial-augmentation.js';
export { augmentLabelMap } from './augment/augment-label-map.js';
export type { LabelAugmentationOptions, LabelAugmentationRecord } from './augment/augment-label-map.js';

// Sampling: counter-based noise (Philox in the core, identical on every backend) and the guided loop
export { gaussianNoise } from './random/noise.js';
export { seededRandom, SeededRandom } from './random/seeded-random.js';
export { sampleLatent } from './pipeline/sample-latent.js';
export { nullContext, guidedContext, combineGuidance } from './pipeline/guidance.js';

// Dataset exports of generated pairs: nnU-Net v2 raw datasets, PNG montages, --volume-dist
export { NnunetDatasetWriter, parseNnunetDatasetName, nnunetLabels, toNnunetLabelMap, checkNnunetCaseId } from './export/nnunet-dataset.js';
export type { NnunetTask, NnunetDatasetName, NnunetDatasetOptions, NnunetFinalizeResult } from './export/nnunet-dataset.js';
export { renderMontage, renderMontageRgb, writeMontagePng } from './export/png-montage.js';
export type { MontageOptions, MontageLayout, DisplayConvention } from './export/png-montage.js';
export { FREESURFER_COLORS } from './export/freesurfer-colors.js';
export { parseVolumeDistribution } from './export/volume-distribution.js';
export type { VolumeDistribution } from './export/volume-distribution.js';

// SynthSeg-style label -> image synthesizer (the image side of training pairs; the non-learned baseline)
export { synthesizeImage } from './synth/synthesize-image.js';
export type { SynthesizeImageOptions, SynthesisParameters, SynthesizedImage } from './synth/synthesize-image.js';
export type { Contrast } from './synth/synthseg-priors.js';

// Generators (four bundles + generator.json) and labeled-pair generation
export { readGenerator, readGeneratorConfig, writeGeneratorConfig, validateGeneratorConfig, generatorGridAffine } from './bundle/generator-bundle.js';
export type { Generator, GeneratorConfig, VolumeConditioning, VolumeCalibration, LabelPresence } from './bundle/generator-bundle.js';
export { LabeledPairGenerator } from './pipeline/labeled-pair-generator.js';
export type { GeneratedMask, MaskRequest } from './pipeline/labeled-pair-generator.js';
export { measureLabelPresence, ensureLabelPresence } from './pipeline/label-presence.js';
export type { LabelPresenceStats, LabelRepair } from './pipeline/label-presence.js';
export { generateDataset, measureLabelMap } from './pipeline/generate-dataset.js';
export type { GenerateDatasetOptions, GeneratedSample, ManifestRecord, VolumeRequest, GenerateEvent } from './pipeline/generate-dataset.js';
export { conditionForVolumeMl, fitVolumeCalibration } from './pipeline/volume-condition.js';
export { randomNetworkWeights } from './nets/random-weights.js';
