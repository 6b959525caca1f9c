# The same addon as CMakeLists.txt, built with node-gyp (npm run build:gyp) for
# machines without cmake. Per-ISA kernels are separate static libraries because
# gyp has no per-source flags.
{
  "variables": {
    "core_sources": [
      "native/core/tensor.cpp",
      "native/core/isa.cpp",
      "native/core/thread_pool.cpp",
      "native/core/memory_plan.cpp",
      "native/core/context.cpp",
      "native/core/ops/conv3d.cpp",
      "native/core/ops/conv3d_winograd.cpp",
      "native/core/ops/group_norm.cpp",
      "native/core/ops/elementwise.cpp",
      "native/core/ops/activations.cpp",
      "native/core/ops/pooling_resize.cpp",
      "native/core/ops/layer_norm.cpp",
      "native/core/ops/attention.cpp",
      "native/core/ops/embeddings.cpp",
      "native/core/ops/convert.cpp",
      "native/core/ops/op_registry.cpp",
      "native/core/ops/random.cpp",
      "native/core/nets/network_spec.cpp",
      "native/core/nets/weight_store.cpp",
      "native/core/nets/tensor_pool.cpp",
      "native/core/nets/layers.cpp",
      "native/core/nets/blocks.cpp",
      "native/core/nets/autoencoder_kl.cpp",
      "native/core/nets/diffusion_unet.cpp",
      "native/core/nets/network.cpp",
      "native/core/kernels/kernel_registry.cpp",
      "native/core/kernels/bf16_pack.cpp",
      "native/core/kernels/kernels_scalar.cpp"
    ],
    "common_cflags": ["-std=c++17", "-O3", "-fexceptions", "-fPIC"]
  },
  "target_defaults": {
    "cflags!": ["-fno-exceptions", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20", "-O2"],
    "cflags_cc": ["<@(common_cflags)"]
  },
  "targets": [
    {
      "target_name": "bl_kernels_avx2",
      "type": "static_library",
      "sources": ["native/core/kernels/kernels_avx2.cpp"],
      "cflags_cc": ["-mavx2", "-mfma"]
    },
    {
      "target_name": "bl_kernels_avx512",
      "type": "static_library",
      "sources": ["native/core/kernels/kernels_avx512.cpp"],
      "cflags_cc": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mfma"]
    },
    {
      "target_name": "bl_kernels_avx512_bf16",
      "type": "static_library",
      "sources": ["native/core/kernels/bf16_avx512.cpp"],
      "cflags_cc": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mavx512bf16", "-mfma"]
    },
    {
      "target_name": "bl_kernels_amx",
      "type": "static_library",
      "sources": ["native/core/kernels/bf16_amx.cpp"],
      "cflags_cc": ["-mamx-tile", "-mamx-bf16"]
    },
    {
      "target_name": "brain_ldm",
      "sources": ["<@(core_sources)", "native/napi/addon.cpp", "native/napi/tensor_arg.cpp", "native/napi/network_wrap.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "BL_HAVE_X86_KERNELS"],
      "dependencies": ["bl_kernels_avx2", "bl_kernels_avx512", "bl_kernels_avx512_bf16", "bl_kernels_amx"],
      "libraries": ["-pthread"]
    }
  ]
}
