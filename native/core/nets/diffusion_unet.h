// DiffusionModelUNet and SPADEDiffusionModelUNet (GenerativeModels 0.2.3
// diffusion_model_unet.py, spade_diffusion_model_unet.py).
#pragma once
#include "blocks.h"
#include "network.h"

namespace bl {

Status create_diffusion_unet(const NetworkSpec& spec, WeightStore& ws, std::unique_ptr<Network>* out);

}  // namespace bl
