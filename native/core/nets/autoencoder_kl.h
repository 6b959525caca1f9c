// AutoencoderKL and SPADEAutoencoderKL (GenerativeModels 0.2.3 autoencoderkl.py,
// spade_autoencoderkl.py), optionally inside the thesis EmbeddingWrapper.
#pragma once
#include "blocks.h"
#include "network.h"

namespace bl {

Status create_autoencoder_kl(const NetworkSpec& spec, WeightStore& ws, std::unique_ptr<Network>* out);

}  // namespace bl
