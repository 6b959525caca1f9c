// Node-API face of bl::Network: created from a context with the spec text and
// the weights ({ name, data, shape, dtype }[]), run by entry name with named
// inputs, resolving to named outputs. float32 weights are borrowed from their
// typed arrays (kept referenced); 16-bit weights are widened once here.
#pragma once
#include <napi.h>

#include <memory>

#include "../core/context.h"

namespace bl_napi {

void define_native_network(Napi::Env env, Napi::Object exports);
// createNetwork(specText, weights) on a live context.
Napi::Value create_native_network(const Napi::CallbackInfo& info, std::shared_ptr<bl::Context> ctx);
// networkWeightShapes(specText) -> [[name, shape[]], ...]: every key the graph binds, in binding order.
Napi::Value network_weight_shapes(const Napi::CallbackInfo& info);

}  // namespace bl_napi
