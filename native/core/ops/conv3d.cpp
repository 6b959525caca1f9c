// 3D convolution as one micro-kernel over "flat taps".
//
// The input is copied once into scratch, zero-padded and split into stride
// phases (phase (a,b,c) holds padded voxels (a + s*i, b + s*j, c + s*k)), so
// that every tap of a strided kernel becomes a stride-1 read of one phase.
// Within an output depth slice, output (oh, ow) maps to the flat position
// p = oh * Wq + ow of a phase plane, and tap t reads x[ci][p + tap_off[t]]:
// a 1-D correlation with fixed offsets, vectorised along p. Lanes with
// ow >= OW (the plane's right margin) are computed and dropped, which costs
// (Wq / OW - 1) extra work (6% at 32^3) and keeps the kernel branch-free for
// 3x3x3, 1x1x1, stride 2 and the autoencoder's end-padded downsample alike.
// The copy is also where GroupNorm+SiLU will fuse into the next convolution.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels/bf16.h"
#include "../ops.h"
#include "conv3d_winograd.h"

namespace bl {

namespace {

struct ConvGeometry {
  int64_t n, cin, d, h, w;        // input
  int64_t cout, kd, kh, kw;       // weight
  int64_t od, oh, ow;             // output
  int64_t sd, sh, sw;             // strides
  int64_t pd, ph, pw;             // pad before
  int64_t dq, hq, wq;             // phase grid
  int64_t phases, phase_size, ci_stride;
  int64_t src_cstride;            // input elements between channels (of the whole input, also in a chunk)
  int64_t src_row0;               // first input depth row a chunk reads
  bool pointwise;                 // flattened 1x1x1: d = h = 1, w = D*H*W
};

ConvGeometry geometry(const Tensor& x, const Tensor& wt, const Conv3dParams& p) {
  ConvGeometry g{};
  g.n = x.shape[0]; g.cin = x.shape[1]; g.d = x.shape[2]; g.h = x.shape[3]; g.w = x.shape[4];
  g.cout = wt.shape[0]; g.kd = wt.shape[2]; g.kh = wt.shape[3]; g.kw = wt.shape[4];
  g.sd = p.stride[0]; g.sh = p.stride[1]; g.sw = p.stride[2];
  g.pd = p.pad_before[0]; g.ph = p.pad_before[1]; g.pw = p.pad_before[2];
  int64_t dp = g.d + p.pad_before[0] + p.pad_after[0];
  int64_t hp = g.h + p.pad_before[1] + p.pad_after[1];
  int64_t wp = g.w + p.pad_before[2] + p.pad_after[2];
  g.od = (dp - g.kd) / g.sd + 1; g.oh = (hp - g.kh) / g.sh + 1; g.ow = (wp - g.kw) / g.sw + 1;
  g.src_cstride = g.d * g.h * g.w;
  g.pointwise = g.kd == 1 && g.kh == 1 && g.kw == 1 && g.sd == 1 && g.sh == 1 && g.sw == 1 &&
                dp == g.d && hp == g.h && wp == g.w;
  if (g.pointwise) {
    // A 1x1x1 convolution is a matrix product: one plane, one row, no margin.
    g.dq = 1; g.hq = 1; g.wq = g.d * g.h * g.w;
    g.od = 1; g.oh = 1; g.ow = g.wq;
    g.d = 1; g.h = 1; g.w = g.wq;
  } else {
    g.dq = (dp + g.sd - 1) / g.sd; g.hq = (hp + g.sh - 1) / g.sh; g.wq = (wp + g.sw - 1) / g.sw;
  }
  g.phases = g.sd * g.sh * g.sw;
  g.phase_size = g.dq * g.hq * g.wq;
  g.ci_stride = g.phases * g.phase_size;
  return g;
}

// The part of g that computes output depth slices [z0, z1) (flat outputs [z0, z1) of a pointwise convolution):
// its own depth padding and phase grid over just the input rows those outputs read. The chunk's padded rows
// start at z0 * sd, a multiple of the stride, so each row keeps its phase.
ConvGeometry chunk_geometry(const ConvGeometry& g, int64_t z0, int64_t z1) {
  ConvGeometry c = g;
  if (g.pointwise) {
    c.w = c.wq = c.ow = z1 - z0;
  } else {
    const int64_t r0 = z0 * g.sd, r1 = (z1 - 1) * g.sd + g.kd;  // padded rows read
    const int64_t first = std::max<int64_t>(0, r0 - g.pd), last = std::min<int64_t>(g.d, r1 - g.pd);
    c.src_row0 = first;
    c.d = std::max<int64_t>(0, last - first);
    c.pd = std::max<int64_t>(0, g.pd - r0);
    c.od = z1 - z0;
    c.dq = (r1 - r0 + g.sd - 1) / g.sd;
  }
  c.phase_size = c.dq * c.hq * c.wq;
  c.ci_stride = c.phases * c.phase_size;
  return c;
}

// Offset of each tap in the packed input (relative to an output's flat position in its phase plane).
void tap_offsets(const ConvGeometry& g, int32_t* tap_off) {
  for (int64_t a = 0; a < g.kd; ++a)
    for (int64_t b = 0; b < g.kh; ++b)
      for (int64_t c = 0; c < g.kw; ++c) {
        int64_t phase = ((a % g.sd) * g.sh + b % g.sh) * g.sw + c % g.sw;
        tap_off[(a * g.kh + b) * g.kw + c] =
            static_cast<int32_t>(phase * g.phase_size + ((a / g.sd) * g.hq + b / g.sh) * g.wq + c / g.sw);
      }
}

int64_t max_tap_offset(const ConvGeometry& g) {
  std::vector<int32_t> off(g.kd * g.kh * g.kw);
  tap_offsets(g, off.data());
  return *std::max_element(off.begin(), off.end());
}

// One channel's zero-padded, phase-split copy: element i of the packed plane goes to dst[kStep * i]
// (kStep 2 interleaves the two channels of a bf16 pair), converted by `convert`. dst is zeroed by the caller.
template <int kStep, typename T, typename Convert>
void scatter_channel(const ConvGeometry& g, const float* src, T* dst, Convert convert) {
  for (int64_t z = 0; z < g.d; ++z) {
    int64_t pz = z + g.pd;
    for (int64_t y = 0; y < g.h; ++y) {
      int64_t py = y + g.ph;
      const float* row = src + (z * g.h + y) * g.w;
      if (g.sw == 1) {
        int64_t phase = (pz % g.sd) * g.sh + py % g.sh;
        T* out = dst + kStep * (phase * g.phase_size + ((pz / g.sd) * g.hq + py / g.sh) * g.wq + g.pw);
        for (int64_t xx = 0; xx < g.w; ++xx) out[kStep * xx] = convert(row[xx]);
      } else {
        for (int64_t xx = 0; xx < g.w; ++xx) {
          int64_t px = xx + g.pw;
          int64_t phase = ((pz % g.sd) * g.sh + py % g.sh) * g.sw + px % g.sw;
          dst[kStep * (phase * g.phase_size + ((pz / g.sd) * g.hq + py / g.sh) * g.wq + px / g.sw)] = convert(row[xx]);
        }
      }
    }
  }
}

// Zero-padded, phase-split copy of one batch element's channels [c0, c1).
void pack_input(const ConvGeometry& g, const float* x, float* xq, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) {
    float* dst = xq + c * g.ci_stride;
    std::memset(dst, 0, sizeof(float) * g.ci_stride);
    scatter_channel<1>(g, x + c * g.src_cstride, dst, [](float v) { return v; });
  }
}

// The same copy in bf16 with channels in pairs (kernels/bf16.h), channel pairs [p0, p1); an odd last channel
// is paired with zeros. Unstrided rows go through the bf16 kernels' vector row packer.
void pack_input_bf16_pairs(const ConvGeometry& g, const Bf16Kernels& bf, const float* x, uint16_t* xq2, int64_t p0,
                           int64_t p1) {
  for (int64_t pr = p0; pr < p1; ++pr) {
    uint16_t* dst = xq2 + 2 * pr * g.ci_stride;
    std::memset(dst, 0, sizeof(uint16_t) * 2 * g.ci_stride);
    const float* a = x + 2 * pr * g.src_cstride;
    const float* b = 2 * pr + 1 < g.cin ? a + g.src_cstride : nullptr;
    if (g.sw != 1) {
      scatter_channel<2>(g, a, dst, f32_to_bf16);
      if (b) scatter_channel<2>(g, b, dst + 1, f32_to_bf16);
      continue;
    }
    for (int64_t z = 0; z < g.d; ++z) {
      const int64_t pz = z + g.pd;
      for (int64_t y = 0; y < g.h; ++y) {
        const int64_t py = y + g.ph;
        const int64_t phase = (pz % g.sd) * g.sh + py % g.sh;
        const int64_t row = (z * g.h + y) * g.w;
        bf.pack_pair_row(a + row, b ? b + row : nullptr,
                         dst + 2 * (phase * g.phase_size + ((pz / g.sd) * g.hq + py / g.sh) * g.wq + g.pw), g.w);
      }
    }
  }
}

// Output channel `a` of one tile (lanes positions from flat p0 of a depth slice) into y's slice `out`: the
// margin lanes (ow >= OW) are dropped, each row's run copied whole; `first` writes with the bias, later input
// channel blocks add their partial sums.
void write_tile_channel(const ConvGeometry& g, const float* a, int64_t p0, int64_t lanes, float bias, bool first,
                        float* out) {
  int64_t oh = p0 / g.wq, ow = p0 % g.wq;
  for (int64_t l = 0; l < lanes;) {
    const int64_t run = std::min(lanes - l, g.wq - ow);
    const int64_t valid = std::max<int64_t>(0, std::min(run, g.ow - ow));
    float* o = out + oh * g.ow + ow;
    const float* src = a + l;
    if (first)
      for (int64_t i = 0; i < valid; ++i) o[i] = src[i] + bias;
    else
      for (int64_t i = 0; i < valid; ++i) o[i] += src[i];
    l += run;
    ow += run;
    if (ow == g.wq) { ow = 0; ++oh; }
  }
}

// weight [Cout, Cin, taps] -> [co_block][Cin][taps][CO], zero rows past Cout.
void pack_weight(const ConvGeometry& g, const float* w, int co_block, float* wp) {
  int64_t taps = g.kd * g.kh * g.kw;
  int64_t blocks = (g.cout + co_block - 1) / co_block;
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t ci = 0; ci < g.cin; ++ci)
      for (int64_t t = 0; t < taps; ++t)
        for (int c = 0; c < co_block; ++c) {
          int64_t co = b * co_block + c;
          *wp++ = co < g.cout ? w[(co * g.cin + ci) * taps + t] : 0.0f;
        }
}

// The fp32 packed weights a network layer keeps (PackedConvWeights::direct_f32), packed on first use for kernel
// table k, and the lock that holds them for the caller's call. Both the flat and the gathered path read
// pack_weight's layout.
std::shared_lock<std::shared_mutex> hold_f32_weights(PackedConvWeights& packed, const KernelTable& k,
                                                     const ConvGeometry& g, const float* w, int co_block,
                                                     const float** out) {
  const int64_t floats = (g.cout + co_block - 1) / co_block * co_block * g.cin * g.kd * g.kh * g.kw;
  std::vector<float>& kept = packed.direct_f32;
  auto lock = hold_packed(
      packed, [&] { return packed.direct_f32_kernels == &k && static_cast<int64_t>(kept.size()) == floats; },
      [&] {
        kept.assign(static_cast<size_t>(floats), 0.0f);
        pack_weight(g, w, co_block, kept.data());
        packed.direct_f32_kernels = &k;
      });
  *out = kept.data();
  return lock;
}

// Small volumes: the flat-tap layout computes whole padded planes, so at 4x5x4 (plane 5 x 6 = 30 flat positions,
// 20 of them outputs, in one 48-lane tile) 58% of the products are margin and the convolution ran at a fifth of the
// kernel's rate. There every output of every batch item becomes one lane of a gathered input
//   xg[(ci * taps + t) * lanes + pos] = the input that tap t of output pos reads (0 in the padding),
// pos = ((n * OD + z) * OH + y) * OW + x, and the convolution is one matrix product over K = Cin * taps on the same
// micro-kernel (one tap, "channels" = K); its weights are pack_weight's, whose [ci][tap] order is that K. For
// 128 -> 128 at 4x5x4 with batch 2 the gathered input is 2.6 MB.
constexpr int64_t kGatherPositions = 2048;                  // outputs of all batch items, at most
constexpr int64_t kGatherBytes = int64_t(32) << 20;         // gathered input, at most
constexpr double kGatherWhenFlatFillBelow = 0.7;            // share of flat lanes that are outputs

bool gathered_pays(const ConvGeometry& g, int tile) {
  if (g.pointwise) return false;
  const int64_t positions = g.n * g.od * g.oh * g.ow;
  const int64_t lanes = (positions + tile - 1) / tile * tile;
  const int64_t taps = g.kd * g.kh * g.kw;
  if (positions > kGatherPositions || g.cin * taps * lanes * static_cast<int64_t>(sizeof(float)) > kGatherBytes) return false;
  const int64_t flat_lanes = g.n * g.od * ((g.oh * g.wq + tile - 1) / tile * tile);
  return static_cast<double>(positions) < kGatherWhenFlatFillBelow * static_cast<double>(flat_lanes);
}

// Input channels [c0, c1) of the gathered input.
void gather_input(const ConvGeometry& g, const float* x, int64_t lanes, float* xg, int64_t c0, int64_t c1) {
  const int64_t taps = g.kd * g.kh * g.kw, in_spatial = g.d * g.h * g.w;
  const int64_t positions = g.n * g.od * g.oh * g.ow;
  for (int64_t ci = c0; ci < c1; ++ci)
    for (int64_t a = 0; a < g.kd; ++a)
      for (int64_t b = 0; b < g.kh; ++b)
        for (int64_t c = 0; c < g.kw; ++c) {
          float* dst = xg + (ci * taps + (a * g.kh + b) * g.kw + c) * lanes;
          for (int64_t n = 0; n < g.n; ++n) {
            const float* xc = x + (n * g.cin + ci) * in_spatial;
            for (int64_t z = 0; z < g.od; ++z) {
              const int64_t iz = z * g.sd + a - g.pd;
              for (int64_t y = 0; y < g.oh; ++y, dst += g.ow) {
                const int64_t iy = y * g.sh + b - g.ph;
                if (iz < 0 || iz >= g.d || iy < 0 || iy >= g.h) {
                  std::memset(dst, 0, sizeof(float) * g.ow);
                  continue;
                }
                const float* row = xc + (iz * g.h + iy) * g.w;
                for (int64_t ox = 0; ox < g.ow; ++ox) {
                  const int64_t ix = ox * g.sw + c - g.pw;
                  dst[ox] = ix >= 0 && ix < g.w ? row[ix] : 0.0f;
                }
              }
            }
          }
          std::memset(dst, 0, sizeof(float) * (lanes - positions));
        }
}

Status conv3d_gathered(Context& ctx, const ConvGeometry& g, const Tensor& x, const Tensor& weight, const Tensor* bias,
                       const Conv3dParams& p, Tensor& y) {
  const KernelTable& k = ctx.kernels();
  const int co_block = k.conv_co_block;
  const int64_t tb = k.conv_tile;
  const int64_t taps = g.kd * g.kh * g.kw;
  const int64_t co_blocks = (g.cout + co_block - 1) / co_block;
  const int64_t positions = g.n * g.od * g.oh * g.ow;
  const int64_t lanes = (positions + tb - 1) / tb * tb;
  const int64_t kdim = g.cin * taps;
  const int64_t wp_floats = co_blocks * kdim * co_block;
  // A network layer keeps these packed weights (the reorder cost a tenth of the call at 4x5x4); the lock is held
  // for the whole call, as for the bf16 weights.
  std::shared_lock<std::shared_mutex> lock;
  const float* wp = nullptr;
  // Items (tile, group of channel blocks); within an item K goes in steps of kGatherK whose gathered input (kGatherK
  // x tile floats, 96 KiB) stays in L2 while every channel block of the group passes its weights over it. Whole-K
  // items streamed the tile's full panel (1.3 MB at 256 channels) once per channel block and ran at 40 GFLOP/s.
  constexpr int64_t kGatherK = 512;
  const int64_t tiles = lanes / tb;
  const int64_t group = std::min<int64_t>(co_blocks, std::max<int64_t>(1, tiles * co_blocks / (2 * ctx.threads())));
  const int64_t groups = (co_blocks + group - 1) / group;
  const int64_t acc_floats = group * co_block * tb;
  float* xg = static_cast<float*>(ctx.scratch().reserve(
      sizeof(float) * (kdim * lanes + (p.packed ? 0 : wp_floats) + acc_floats * ctx.threads())));
  float* sums = xg + kdim * lanes + (p.packed ? 0 : wp_floats);
  if (p.packed) {
    lock = hold_f32_weights(*p.packed, k, g, weight.f32(), co_block, &wp);
  } else {
    pack_weight(g, weight.f32(), co_block, xg + kdim * lanes);
    wp = xg + kdim * lanes;
  }
  ctx.pool().parallel_for(g.cin, [&](int64_t c0, int64_t c1, int) { gather_input(g, x.f32(), lanes, xg, c0, c1); });

  const float* bias_data = bias ? bias->f32() : nullptr;
  const int64_t out_spatial = g.od * g.oh * g.ow;
  const int32_t tap0 = 0;
  ctx.pool().parallel_for_dynamic(tiles * groups, 4, [&](int64_t begin, int64_t end, int thread) {
    alignas(64) float acc[16 * 64];
    float* sum = sums + thread * acc_floats;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t tile = item / groups, cb0 = (item % groups) * group, cb1 = std::min(co_blocks, cb0 + group);
      for (int64_t k0 = 0; k0 < kdim; k0 += kGatherK) {
        const int64_t kn = std::min(kGatherK, kdim - k0);
        for (int64_t cb = cb0; cb < cb1; ++cb) {
          k.conv_tile_fn(xg + k0 * lanes + tile * tb, wp + (cb * kdim + k0) * co_block, &tap0, 1, static_cast<int>(kn), lanes, acc, tb);
          float* s = sum + (cb - cb0) * co_block * tb;
          if (k0 == 0) std::memcpy(s, acc, sizeof(float) * co_block * tb);
          else for (int64_t i = 0; i < co_block * tb; ++i) s[i] += acc[i];
        }
      }
      const int64_t used = std::min(tb, positions - tile * tb);
      for (int64_t cb = cb0; cb < cb1; ++cb)
        for (int c = 0; c < co_block; ++c) {
          const int64_t co = cb * co_block + c;
          if (co >= g.cout) break;
          const float b = bias_data ? bias_data[co] : 0.0f;
          const float* s = sum + ((cb - cb0) * co_block + c) * tb;
          for (int64_t l = 0; l < used; ++l) {
            const int64_t pos = tile * tb + l, n = pos / out_spatial;
            y.f32()[(n * g.cout + co) * out_spatial + pos % out_spatial] = s[l] + b;
          }
        }
    }
  });
  return Status::ok();
}

}  // namespace

Status conv3d_output_shape(const Tensor& x, const Tensor& weight, const Conv3dParams& p, int64_t out[5]) {
  BL_RETURN_IF_ERROR(check_tensor(x, "conv3d", "input", 5));
  BL_RETURN_IF_ERROR(check_tensor(weight, "conv3d", "weight", 5));
  if (weight.shape[1] != x.shape[1])
    return Status::range_error("conv3d: argument 'weight' has shape " + weight.shape_string() + " for input shape " +
                               x.shape_string() + ": weight.shape[1] must equal the input's " +
                               std::to_string(x.shape[1]) + " channels");
  static const char* dims = "DHW";
  for (int i = 0; i < 3; ++i) {
    if (p.stride[i] < 1)
      return Status::range_error(std::string("conv3d: argument 'stride' must be >= 1 in every dim, got ") +
                                 std::to_string(p.stride[i]) + " for " + dims[i]);
    if (p.pad_before[i] < 0 || p.pad_after[i] < 0)
      return Status::range_error(std::string("conv3d: argument 'padding' must be >= 0, got ") +
                                 std::to_string(std::min(p.pad_before[i], p.pad_after[i])) + " for " + dims[i]);
    int64_t padded = x.shape[2 + i] + p.pad_before[i] + p.pad_after[i];
    if (padded < weight.shape[2 + i])
      return Status::range_error(std::string("conv3d: padded input size ") + std::to_string(padded) + " along " +
                                 dims[i] + " is smaller than the kernel size " + std::to_string(weight.shape[2 + i]));
    out[2 + i] = (padded - weight.shape[2 + i]) / p.stride[i] + 1;
  }
  out[0] = x.shape[0];
  out[1] = weight.shape[0];
  return Status::ok();
}

namespace {

// The m of the Winograd F(m, 3) conv3d runs for these arguments, or 0 for none.
int winograd_tile_for(const Context& ctx, const Tensor& x, const Tensor& weight, const Conv3dParams& p) {
  switch (p.algorithm) {
    case Conv3dAlgorithm::Winograd: return 2;
    case Conv3dAlgorithm::Winograd4: return 4;
    case Conv3dAlgorithm::Auto: break;
    default: return 0;
  }
  const Bf16Kernels* bf = ctx.bf16();
  if (!winograd_applies(weight, p)) return 0;
  int64_t out[3];
  for (int i = 0; i < 3; ++i) out[i] = x.shape[2 + i] + p.pad_before[i] + p.pad_after[i] - 2;
  const int64_t cin = weight.shape[1], cout = weight.shape[0];
  const bool keeps = p.packed != nullptr;
  const int fp32_tile = winograd_tile(cin, cout, x.shape[0], out, false, ctx.kernels().isa == Isa::WasmSimd128, keeps,
                                      ctx.threads(), bf != nullptr);
  // In a bf16 context F(4,3) still computes in fp32 (conv3d_winograd.cpp), and where it pays it beats the bf16
  // products: its 8x fewer multiplies outrun the dot-product kernels' 2x rate, and its error is fp32's.
  if (!bf || fp32_tile == 4) return fp32_tile;
  return bf->prefers_direct ? 0 : winograd_tile(cin, cout, x.shape[0], out, true, false, keeps, ctx.threads());
}

}  // namespace

bool conv3d_uses_winograd(const Context& ctx, const Tensor& x, const Tensor& weight, const Conv3dParams& p) {
  return winograd_tile_for(ctx, x, weight, p) != 0;
}

Status conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
              Tensor& y) {
  int64_t out_shape[5];
  BL_RETURN_IF_ERROR(conv3d_output_shape(x, weight, p, out_shape));
  if (bias) {
    BL_RETURN_IF_ERROR(check_tensor(*bias, "conv3d", "bias", 1));
    BL_RETURN_IF_ERROR(check_shape(*bias, "conv3d", "bias", out_shape + 1, 1));
  }
  BL_RETURN_IF_ERROR(check_tensor(y, "conv3d", "out", 5));
  BL_RETURN_IF_ERROR(check_shape(y, "conv3d", "out", out_shape, 5));
  const bool winograd4 = p.algorithm == Conv3dAlgorithm::Winograd4;
  if ((p.algorithm == Conv3dAlgorithm::Winograd || winograd4) && !winograd_applies(weight, p))
    return Status::range_error(std::string("conv3d: algorithm '") + (winograd4 ? "winograd4" : "winograd") +
                               "' needs a 3x3x3 kernel with stride 1, got kernel " + weight.shape_string() +
                               " and stride (" + std::to_string(p.stride[0]) + ", " + std::to_string(p.stride[1]) +
                               ", " + std::to_string(p.stride[2]) + ")");
  // bf16 precision: the input and weights rounded, input channels in pairs (kernels/bf16.h), on the bf16
  // kernels' own tile; an odd channel count gets a zero partner.
  const Bf16Kernels* bf = ctx.bf16();
  if (const int tile = winograd_tile_for(ctx, x, weight, p)) return conv3d_winograd(ctx, x, weight, bias, p, tile, y);

  const KernelTable& k = ctx.kernels();
  const ConvGeometry full = geometry(x, weight, p);
  if (p.algorithm == Conv3dAlgorithm::Gathered) {
    if (bf) return Status::range_error("conv3d: algorithm 'gathered' runs fp32 only; this context computes in bf16");
    return conv3d_gathered(ctx, full, x, weight, bias, p, y);
  }
  if (!bf && p.algorithm == Conv3dAlgorithm::Auto && gathered_pays(full, k.conv_tile))
    return conv3d_gathered(ctx, full, x, weight, bias, p, y);
  const int co_block = bf ? bf->conv_co_block : k.conv_co_block;
  const int tile = bf ? bf->conv_tile : k.conv_tile;
  const int64_t taps = full.kd * full.kh * full.kw;
  const int64_t co_blocks = (full.cout + co_block - 1) / co_block;
  const int64_t pairs = (full.cin + 1) / 2;
  const int64_t pair_multiple = bf ? bf->pair_multiple : 1;
  const int64_t padded_pairs = (pairs + pair_multiple - 1) / pair_multiple * pair_multiple;

  // The packed input is made a chunk of output slices (flat outputs for a 1x1x1 convolution) at a time, each
  // chunk packing only the input rows it reads: a whole-volume copy of a 128-channel map at 96x128x96 is
  // 640 MB of scratch. Chunks hold about chunk_bytes (64 MiB); the rows two neighbouring chunks share are packed twice
  // (2 of ~10 rows for a 3x3x3 kernel; packing is ~3% of a convolution). Each output is summed in the same
  // order whatever the chunking, so the results are identical.
  const int64_t chunk_bytes = p.chunk_bytes > 0 ? p.chunk_bytes : int64_t(64) << 20;
  const int64_t packed_channels = bf ? 2 * padded_pairs : full.cin;
  const int64_t elem_bytes = bf ? 2 : 4;
  const int64_t outer = full.pointwise ? full.ow : full.od;
  const int64_t bytes_per_outer = packed_channels * elem_bytes * (full.pointwise ? 1 : full.phases * full.hq * full.wq);
  const int64_t chunk = std::min(outer, std::max<int64_t>(1, chunk_bytes / bytes_per_outer));
  const ConvGeometry largest = chunk_geometry(full, 0, chunk);

  // Margin lanes of the last tiles read past the packed input: size the buffer for the furthest read of the
  // largest chunk (later chunks are no larger; a shorter last chunk reads less).
  const int64_t plane_max = largest.oh * largest.wq;
  const int64_t tiles_max = (plane_max + tile - 1) / tile;
  const int64_t reach_max = max_tap_offset(largest) + (largest.od - 1) * largest.hq * largest.wq + tiles_max * tile;
  if (full.cin * largest.ci_stride > INT32_MAX || reach_max > INT32_MAX)
    return Status::range_error("conv3d: input " + x.shape_string() + " is too large for one call (over 2^31 padded elements per batch item)");
  const int64_t furthest = (full.cin - 1) * largest.ci_stride + reach_max;
  int64_t xq_floats = bf ? 0 : std::max(full.cin * largest.ci_stride, furthest) + 16;
  // fp32 weights of a network layer at a small volume are packed once and kept: there packing them each call cost
  // a quarter of the convolution (128 -> 128 at 4x5x4: 4.0 -> 3.0 ms per call).
  const bool keep_f32 = !bf && p.packed && full.n * full.od * full.oh * full.ow <= kGatherPositions;
  int64_t wp_floats = bf || keep_f32 ? 0 : co_blocks * full.cin * taps * co_block;
  const int64_t xq2_halves = bf ? 2 * ((padded_pairs - 1) * largest.ci_stride + std::max(largest.ci_stride, reach_max) + 16) : 0;
  const int64_t w2_halves = bf ? co_blocks * padded_pairs * taps * co_block * 2 : 0;
  const int64_t halves_as_floats = (xq2_halves + (p.packed ? 0 : w2_halves) + 1) / 2;
  float* scratch = static_cast<float*>(ctx.scratch().reserve(sizeof(float) * (xq_floats + wp_floats + halves_as_floats)));
  float* xq = scratch;
  float* wp_scratch = scratch + xq_floats;
  const float* wp = wp_scratch;
  uint16_t* xq2 = reinterpret_cast<uint16_t*>(wp_scratch + wp_floats);
  uint16_t* w2 = xq2 + xq2_halves;
  // A network layer keeps its packed weights (PackedConvWeights); the lock is held for the whole call, so a
  // second run on another context cannot repack them underneath this one.
  std::shared_lock<std::shared_mutex> packed_lock;
  auto pack_bf16 = [&](uint16_t* dst) {
    ctx.pool().parallel_for(co_blocks, [&](int64_t b0, int64_t b1, int) {
      bf->pack_weights(weight.f32(), full.cout, full.cin, taps, dst, b0, b1);
    });
  };
  if (keep_f32) {
    packed_lock = hold_f32_weights(*p.packed, k, full, weight.f32(), co_block, &wp);
  } else if (bf && p.packed) {
    PackedConvWeights& pk = *p.packed;
    packed_lock = hold_packed(
        pk, [&] { return pk.kernels == bf && static_cast<int64_t>(pk.data.size()) == w2_halves; },
        [&] {
          pk.kernels = nullptr;
          pk.data.assign(static_cast<size_t>(w2_halves), 0);
          pack_bf16(pk.data.data());
          pk.kernels = bf;
        });
    w2 = pk.data.data();
  }

  if (bf) {
    if (!p.packed) pack_bf16(w2);
  } else if (!keep_f32) {
    pack_weight(full, weight.f32(), co_block, wp_scratch);
  }
  const float* bias_data = bias ? bias->f32() : nullptr;
  const int64_t out_spatial = full.od * full.oh * full.ow;
  const int64_t in_spatial = full.d * full.h * full.w;

  // Input channels are taken in blocks whose packed weights (for every output channel) fit in
  // about 1 MiB: every tile reuses the whole block's weights, so they must stay in cache. Without
  // the split a 768 -> 256 convolution streams 21 MB of weights from memory per tile and runs at a
  // fifth of the kernel's rate. Later blocks add their partial sums to the output. A 1x1x1
  // convolution is not split: its output is much larger than its weights, and re-reading the
  // output per block costs more than streaming the weights.
  const int64_t weight_bytes_per_ci = co_blocks * co_block * taps * static_cast<int64_t>(sizeof(float));
  int64_t ci_block = taps == 1 ? full.cin
      : std::min<int64_t>(full.cin, std::max<int64_t>(16, (int64_t(1) << 20) / weight_bytes_per_ci));
  // bf16: blocks start on a K step of the bf16 kernel (a channel pair, or 16 pairs for AMX).
  if (bf && ci_block < full.cin) ci_block = std::min(full.cin, (ci_block + 2 * pair_multiple - 1) / (2 * pair_multiple) * (2 * pair_multiple));

  std::vector<int32_t> tap_off(taps);
  for (int64_t n = 0; n < full.n; ++n) {
    for (int64_t z0 = 0; z0 < outer; z0 += chunk) {
      const ConvGeometry g = chunk_geometry(full, z0, std::min(outer, z0 + chunk));
      tap_offsets(g, tap_off.data());
      const int64_t plane = g.oh * g.wq;  // flat positions per output depth slice, margin included
      const int64_t tiles = (plane + tile - 1) / tile;
      // Where this chunk's input rows start in each channel, and its outputs in each output channel.
      const int64_t src_off = full.pointwise ? z0 : g.src_row0 * full.h * full.w;
      const int64_t out_off = full.pointwise ? z0 : z0 * full.oh * full.ow;
      const float* xn = x.f32() + n * full.cin * in_spatial + src_off;
      float* yn = y.f32() + n * full.cout * out_spatial + out_off;
      if (bf) {
        ctx.pool().parallel_for(pairs, [&](int64_t p0, int64_t p1, int) { pack_input_bf16_pairs(g, *bf, xn, xq2, p0, p1); });
        std::memset(xq2 + 2 * pairs * g.ci_stride, 0, sizeof(uint16_t) * (xq2_halves - 2 * pairs * g.ci_stride));
      } else {
        ctx.pool().parallel_for(g.cin, [&](int64_t c0, int64_t c1, int) { pack_input(g, xn, xq, c0, c1); });
        std::memset(xq + g.cin * g.ci_stride, 0, sizeof(float) * (xq_floats - g.cin * g.ci_stride));
      }
      for (int64_t ci0 = 0; ci0 < g.cin; ci0 += ci_block) {
        const int64_t cin_here = std::min(ci_block, g.cin - ci0);
        const bool first = ci0 == 0;
        // Items ordered (depth slice, tile group, channel block, tile): a group's input (~256 KiB)
        // stays in L2 while every channel block's weights pass over it once, instead of all the
        // weights streaming past each single tile.
        const int64_t tile_bytes = cin_here * tile * static_cast<int64_t>(sizeof(float)) * (taps > 1 ? 3 : 1);
        const int64_t group = std::min<int64_t>(tiles, std::max<int64_t>(1, (int64_t(256) << 10) / tile_bytes));
        const int64_t groups = (tiles + group - 1) / group;
        const int64_t items = g.od * groups * co_blocks * group;
        // Taken in pieces by whichever thread is free (ThreadPool::parallel_for_dynamic): each item writes its own
        // outputs, so the bytes do not depend on which thread runs it.
        ctx.pool().parallel_for_dynamic(items, 4, [&](int64_t begin, int64_t end, int) {
          alignas(64) float acc[16 * 64];
          for (int64_t item = begin; item < end; ++item) {
            int64_t t = ((item / (group * co_blocks)) % groups) * group + item % group;
            if (t >= tiles) continue;
            int64_t cb = (item / group) % co_blocks;
            int64_t z = item / (group * co_blocks * groups);
            int64_t p0 = t * tile;
            if (bf)
              bf->conv_tile_fn(xq2 + 2 * ((ci0 / 2) * g.ci_stride + z * g.hq * g.wq + p0),
                            w2 + 2 * (cb * padded_pairs + ci0 / 2) * taps * co_block, tap_off.data(),
                            static_cast<int>(taps),
                            static_cast<int>(std::min(padded_pairs - ci0 / 2, (cin_here + 2 * pair_multiple - 1) /
                                                      (2 * pair_multiple) * pair_multiple)),
                            g.ci_stride, acc, tile);
            else
              k.conv_tile_fn(xq + ci0 * g.ci_stride + z * g.hq * g.wq + p0,
                             wp + (cb * g.cin + ci0) * taps * co_block, tap_off.data(), static_cast<int>(taps),
                             static_cast<int>(cin_here), g.ci_stride, acc, tile);
            int64_t lanes = std::min<int64_t>(tile, plane - p0);
            for (int c = 0; c < co_block; ++c) {
              int64_t co = cb * co_block + c;
              if (co >= g.cout) break;
              write_tile_channel(g, acc + c * tile, p0, lanes, bias_data ? bias_data[co] : 0.0f, first,
                                 yn + co * out_spatial + z * g.oh * g.ow);
            }
          }
        });
      }
    }
  }
  return Status::ok();
}

}  // namespace bl
