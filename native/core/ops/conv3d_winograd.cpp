// Winograd F(2x2x2, 3x3x3): each 2x2x2 output block is computed from its 4x4x4 input window as
//   Y = A^T [ sum_ci (G g G^T)[co][ci] (.) (B^T d B)[ci] ] A        (per dimension, Lavin & Gray 2015)
// with 64 products per block instead of 8 * 27 = 216 (3.4x fewer multiplies). The products at each
// of the 64 transform points form one matrix product over channels,
//   M_p[co][tile] = sum_ci U_p[co][ci] * V_p[ci][tile],
// which runs on the direct convolution's micro-kernel (one tap, "positions" = tiles).
//
// Tiles are processed in groups of depth slices (a slice = one batch item's row of tiles at one
// output depth pair) so the transformed input and products of a group stay a few tens of MB; the
// transformed weights (2.4x the weights' size) are made per call rather than kept, so a network's
// resident memory does not grow by 2.4x its 3x3x3 weights. Every transform is separable and runs
// one dimension at a time on rows of tiles, so the inner loops are long contiguous vectors.
#include "conv3d_winograd.h"

#include "../kernels/bf16.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace bl {

namespace {

constexpr int kPoints = 64;  // 4x4x4 transform points; point p = (a * 4 + b) * 4 + c for (D, H, W)

struct WinoGeometry {
  int64_t n, cin, cout, d, h, w;
  int64_t pd, ph, pw;     // padding before, per dim
  int64_t od, oh, ow;     // output size
  int64_t tz, ty, tx;     // 2x2x2 tiles per dim (ceil of output / 2)
  int64_t plane_tiles;    // ty * tx: tiles in one slice
  int64_t slices;         // n * tz
};

WinoGeometry wino_geometry(const Tensor& x, const Tensor& wt, const Conv3dParams& p) {
  WinoGeometry g{};
  g.n = x.shape[0]; g.cin = x.shape[1]; g.d = x.shape[2]; g.h = x.shape[3]; g.w = x.shape[4];
  g.cout = wt.shape[0];
  g.pd = p.pad_before[0]; g.ph = p.pad_before[1]; g.pw = p.pad_before[2];
  g.od = g.d + p.pad_before[0] + p.pad_after[0] - 2;
  g.oh = g.h + p.pad_before[1] + p.pad_after[1] - 2;
  g.ow = g.w + p.pad_before[2] + p.pad_after[2] - 2;
  g.tz = (g.od + 1) / 2; g.ty = (g.oh + 1) / 2; g.tx = (g.ow + 1) / 2;
  g.plane_tiles = g.ty * g.tx;
  g.slices = g.n * g.tz;
  return g;
}

// B^T along one axis for n neighbouring lanes: the 4 window rows r0..r3 -> the 4 point rows.
inline void input_rows(const float* __restrict r0, const float* __restrict r1, const float* __restrict r2,
                       const float* __restrict r3, float* __restrict o0, float* __restrict o1, float* __restrict o2,
                       float* __restrict o3, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    o0[i] = r0[i] - r2[i];
    o1[i] = r1[i] + r2[i];
    o2[i] = r2[i] - r1[i];
    o3[i] = r1[i] - r3[i];
  }
}

// A^T along one axis: 4 point rows -> the 2 output rows.
inline void output_rows(const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
                        const float* __restrict m3, float* __restrict o0, float* __restrict o1, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    o0[i] = m0[i] + m1[i] + m2[i];
    o1[i] = m1[i] - m2[i] - m3[i];
  }
}

// G along one axis of a 3-tap filter, for kLanes filters at once: 3 tap rows -> 4 point rows.
constexpr int kLanes = 16;  // input channels transformed together (the loops over them vectorise)
inline void filter_points(const float* __restrict g0, const float* __restrict g1, const float* __restrict g2,
                          float* __restrict u0, float* __restrict u1, float* __restrict u2, float* __restrict u3) {
  for (int j = 0; j < kLanes; ++j) {
    u0[j] = g0[j];
    u1[j] = 0.5f * (g0[j] + g1[j] + g2[j]);
    u2[j] = 0.5f * (g0[j] - g1[j] + g2[j]);
    u3[j] = g2[j];
  }
}

// U[p][cb][ci][c] = (G g G^T) for output channel cb * co_block + c (zero past cout). Each block of
// kLanes input channels is transformed in a local buffer and written as one contiguous run per point,
// so the 64 destination planes are filled sequentially rather than one float at a time.
void transform_weights(const WinoGeometry& g, const float* w, int co_block, int64_t cb0, int64_t cb1, float* u) {
  const int64_t blocks = (g.cout + co_block - 1) / co_block;
  const int64_t point_stride = blocks * g.cin * co_block;
  alignas(64) float taps[27][kLanes], t1[3][3][4][kLanes], t2[3][4][4][kLanes], t3[4][4][4][kLanes];
  std::vector<float> block(static_cast<size_t>(kPoints) * kLanes * co_block);  // [p][ci][c]
  for (int64_t cb = cb0; cb < cb1; ++cb)
    for (int64_t ci0 = 0; ci0 < g.cin; ci0 += kLanes) {
      const int64_t lanes = std::min<int64_t>(kLanes, g.cin - ci0);
      for (int c = 0; c < co_block; ++c) {
        const int64_t co = cb * co_block + c;
        for (int j = 0; j < kLanes; ++j)
          for (int k = 0; k < 27; ++k) taps[k][j] = co < g.cout && j < lanes ? w[(co * g.cin + ci0 + j) * 27 + k] : 0.0f;
        for (int kd = 0; kd < 3; ++kd)
          for (int kh = 0; kh < 3; ++kh) {
            const float* r = taps[kd * 9 + kh * 3];
            filter_points(r, r + kLanes, r + 2 * kLanes, t1[kd][kh][0], t1[kd][kh][1], t1[kd][kh][2], t1[kd][kh][3]);
          }
        for (int kd = 0; kd < 3; ++kd)
          for (int c3 = 0; c3 < 4; ++c3)
            filter_points(t1[kd][0][c3], t1[kd][1][c3], t1[kd][2][c3], t2[kd][0][c3], t2[kd][1][c3], t2[kd][2][c3], t2[kd][3][c3]);
        for (int b = 0; b < 4; ++b)
          for (int c3 = 0; c3 < 4; ++c3)
            filter_points(t2[0][b][c3], t2[1][b][c3], t2[2][b][c3], t3[0][b][c3], t3[1][b][c3], t3[2][b][c3], t3[3][b][c3]);
        const float* flat = &t3[0][0][0][0];
        for (int p = 0; p < kPoints; ++p)
          for (int64_t j = 0; j < lanes; ++j) block[(p * kLanes + j) * co_block + c] = flat[p * kLanes + j];
      }
      for (int p = 0; p < kPoints; ++p)
        std::memcpy(u + p * point_stride + (cb * g.cin + ci0) * co_block, block.data() + p * kLanes * co_block,
                    sizeof(float) * lanes * co_block);
    }
}

// Per-thread buffers of the input transform for runs of up to `run_slices` slices of one batch item.
struct InputScratch {
  int64_t zr, up, t1_floats, t2_floats;
  InputScratch(const WinoGeometry& g, int64_t run_slices) {
    zr = 2 * run_slices + 2;
    up = 2 * g.ty + 2;
    t1_floats = 4 * zr * up * g.tx;
    t2_floats = 16 * zr * g.plane_tiles;
  }
  int64_t floats(const WinoGeometry& g) const { return t1_floats + t2_floats + 2 * g.tx + 2 + 16; }
};

// V[p][ci][lane] for channel ci and slices [s0, s1); lane = (s - s0) * plane_tiles + ty * tx_count + tx.
void transform_input(const WinoGeometry& g, const InputScratch& sc, const float* x, int64_t ci, int64_t s0, int64_t s1,
                     float* v, int64_t lanes, float* scratch) {
  float* t1 = scratch;                       // [c][zi][u][tx]
  float* t2 = t1 + sc.t1_floats;             // [c][b][zi][ty * tx]
  float* row = t2 + sc.t2_floats;            // one zero-padded input row
  const int64_t wp = 2 * g.tx + 2;
  const int64_t point_stride = g.cin * lanes;
  for (int64_t s = s0; s < s1;) {
    const int64_t n = s / g.tz, tz_a = s % g.tz, tz_b = std::min(g.tz, tz_a + (s1 - s));
    const int64_t zr = 2 * (tz_b - tz_a) + 2;
    const float* xc = x + (n * g.cin + ci) * g.d * g.h * g.w;
    // W: each padded row -> 4 point rows over tx.
    for (int64_t zi = 0; zi < zr; ++zi) {
      const int64_t z = 2 * tz_a + zi - g.pd;
      for (int64_t u = 0; u < sc.up; ++u) {
        const int64_t yy = u - g.ph;
        std::memset(row, 0, sizeof(float) * wp);
        if (z >= 0 && z < g.d && yy >= 0 && yy < g.h) std::memcpy(row + g.pw, xc + (z * g.h + yy) * g.w, sizeof(float) * g.w);
        float* o = t1 + (zi * sc.up + u) * g.tx;
        const int64_t cs = zr * sc.up * g.tx;
        for (int64_t t = 0; t < g.tx; ++t) {
          const float d0 = row[2 * t], d1 = row[2 * t + 1], d2 = row[2 * t + 2], d3 = row[2 * t + 3];
          o[t] = d0 - d2;
          o[cs + t] = d1 + d2;
          o[2 * cs + t] = d2 - d1;
          o[3 * cs + t] = d1 - d3;
        }
      }
    }
    // H: rows 2ty..2ty+3 of each plane -> 4 point rows.
    for (int c = 0; c < 4; ++c)
      for (int64_t zi = 0; zi < zr; ++zi)
        for (int64_t ty = 0; ty < g.ty; ++ty) {
          const float* r = t1 + ((c * zr + zi) * sc.up + 2 * ty) * g.tx;
          float* o = t2 + ((c * 4) * zr + zi) * g.plane_tiles + ty * g.tx;
          const int64_t bs = zr * g.plane_tiles;
          input_rows(r, r + g.tx, r + 2 * g.tx, r + 3 * g.tx, o, o + bs, o + 2 * bs, o + 3 * bs, g.tx);
        }
    // D: planes 2tz..2tz+3 -> 4 point planes, written straight into V.
    for (int c = 0; c < 4; ++c)
      for (int b = 0; b < 4; ++b)
        for (int64_t tz = tz_a; tz < tz_b; ++tz) {
          const float* q = t2 + ((c * 4 + b) * zr + 2 * (tz - tz_a)) * g.plane_tiles;
          float* o = v + ((b * 4 + c) * g.cin + ci) * lanes + (n * g.tz + tz - s0) * g.plane_tiles;
          const int64_t as = 16 * point_stride;  // point a -> a + 1
          input_rows(q, q + g.plane_tiles, q + 2 * g.plane_tiles, q + 3 * g.plane_tiles, o, o + as, o + 2 * as,
                     o + 3 * as, g.plane_tiles);
        }
    s += tz_b - tz_a;
  }
}

constexpr int64_t kOutChunk = 64;  // lanes per output-transform step: its 56 rows stay in L1

// y[n][co] for the tiles of slices [s0, s0 + lanes_used / plane_tiles) from M[p][co][lane].
void transform_output(const WinoGeometry& g, const float* m, int64_t co, int64_t s0, int64_t lanes_used, int64_t lanes,
                      float bias, float* y, float* scratch) {
  float* o1 = scratch;                   // [a'][b][c][chunk]
  float* o2 = o1 + 32 * kOutChunk;       // [a'][b'][c][chunk]
  float* o3 = o2 + 16 * kOutChunk;       // [a'][b'][c'][chunk]
  const int64_t point_stride = g.cout * lanes;
  const float* mc = m + co * lanes;
  for (int64_t l0 = 0; l0 < lanes_used; l0 += kOutChunk) {
    const int64_t len = std::min(kOutChunk, lanes_used - l0);
    for (int bc = 0; bc < 16; ++bc) {
      const float* r = mc + bc * point_stride + l0;
      output_rows(r, r + 16 * point_stride, r + 32 * point_stride, r + 48 * point_stride, o1 + bc * kOutChunk,
                  o1 + (16 + bc) * kOutChunk, len);
    }
    for (int a = 0; a < 2; ++a)
      for (int c = 0; c < 4; ++c) {
        const float* r = o1 + (a * 16 + c) * kOutChunk;
        output_rows(r, r + 4 * kOutChunk, r + 8 * kOutChunk, r + 12 * kOutChunk, o2 + (a * 8 + c) * kOutChunk,
                    o2 + (a * 8 + 4 + c) * kOutChunk, len);
      }
    for (int ab = 0; ab < 4; ++ab) {
      const float* r = o2 + ab * 4 * kOutChunk;
      output_rows(r, r + kOutChunk, r + 2 * kOutChunk, r + 3 * kOutChunk, o3 + ab * 2 * kOutChunk,
                  o3 + (ab * 2 + 1) * kOutChunk, len);
    }
    for (int64_t l = 0; l < len; ++l) {
      const int64_t lane = l0 + l;
      const int64_t s = s0 + lane / g.plane_tiles, rem = lane % g.plane_tiles;
      const int64_t n = s / g.tz, tz = s % g.tz, ty = rem / g.tx, tx = rem % g.tx;
      float* yc = y + (n * g.cout + co) * g.od * g.oh * g.ow;
      for (int a = 0; a < 2; ++a) {
        const int64_t oz = 2 * tz + a;
        if (oz >= g.od) break;
        for (int b = 0; b < 2; ++b) {
          const int64_t oy = 2 * ty + b;
          if (oy >= g.oh) break;
          float* out = yc + (oz * g.oh + oy) * g.ow + 2 * tx;
          out[0] = o3[((a * 2 + b) * 2) * kOutChunk + l] + bias;
          if (2 * tx + 1 < g.ow) out[1] = o3[((a * 2 + b) * 2 + 1) * kOutChunk + l] + bias;
        }
      }
    }
  }
}

constexpr int64_t kGroupBytesCap = int64_t(128) << 20;  // transformed input + products of one group

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

bool winograd_applies(const Tensor& weight, const Conv3dParams& p) {
  return weight.shape[2] == 3 && weight.shape[3] == 3 && weight.shape[4] == 3 && p.stride[0] == 1 &&
         p.stride[1] == 1 && p.stride[2] == 1;
}

// Measured on the 2-core EPYC (bench/conv3d-algorithms.bench.ts): 2.5-4x faster from 128 channels up,
// about even at 64, slower at 32 and below, where the transforms cost as much as the products.
bool winograd_pays(int64_t cin, int64_t cout) { return cin >= 64 && cout >= 64; }

Status conv3d_winograd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
                       Tensor& y) {
  const KernelTable& k = ctx.kernels();
  const WinoGeometry g = wino_geometry(x, weight, p);
  const int co_block = k.conv_co_block;
  const int64_t tb = k.conv_tile;
  const int64_t co_blocks = (g.cout + co_block - 1) / co_block;

  // Slices per group: enough lanes that the transformed weights, streamed once per group, cost no
  // more memory traffic than the group's own transformed input and products (lanes ~ cin*cout /
  // (cin + cout)), within kGroupBytesCap.
  const int64_t bytes_per_lane = kPoints * (g.cin + g.cout) * static_cast<int64_t>(sizeof(float));
  const int64_t want_lanes = std::max<int64_t>(4 * tb, g.cin * g.cout / (g.cin + g.cout));
  const int64_t cap_lanes = std::max<int64_t>(g.plane_tiles, kGroupBytesCap / bytes_per_lane);
  const int64_t group_slices =
      std::min(g.slices, std::max<int64_t>(1, std::min(want_lanes, cap_lanes) / g.plane_tiles));
  const int64_t lanes = round_up(group_slices * g.plane_tiles, tb);
  const int64_t run_slices = std::min(group_slices, g.tz);
  const InputScratch isc(g, run_slices);
  const int threads = ctx.threads();

  const int64_t u_floats = round_up(kPoints * co_blocks * co_block * g.cin, 16);
  const int64_t v_floats = round_up(kPoints * g.cin * lanes, 16);
  const int64_t m_floats = round_up(kPoints * g.cout * lanes, 16);
  const int64_t thread_floats = round_up(std::max<int64_t>(isc.floats(g), 56 * kOutChunk), 16);
  // bf16 precision: the products at each point run on the bf16 tile, from U and V rounded to bf16 with
  // input channels in pairs (kernels/bf16.h); the transforms and M stay fp32.
  const Bf16Kernels* bf = ctx.bf16();
  if (bf && (bf->conv_co_block != co_block || bf->conv_tile != tb || bf->pair_multiple != 1)) bf = nullptr;
  const int64_t pairs = (g.cin + 1) / 2;
  const int64_t u2_floats = bf ? round_up(kPoints * co_blocks * co_block * pairs, 16) : 0;  // 2 halves = 1 float
  const int64_t v2_floats = bf ? round_up(kPoints * pairs * lanes, 16) : 0;
  float* u = static_cast<float*>(ctx.scratch().reserve(
      sizeof(float) * (u_floats + v_floats + m_floats + thread_floats * threads + u2_floats + v2_floats)));
  float* v = u + u_floats;
  float* m = v + v_floats;
  float* per_thread = m + m_floats;
  uint16_t* u2 = reinterpret_cast<uint16_t*>(per_thread + thread_floats * threads);
  uint16_t* v2 = u2 + 2 * u2_floats;

  ctx.pool().parallel_for(co_blocks, [&](int64_t b0, int64_t b1, int) { transform_weights(g, weight.f32(), co_block, b0, b1, u); });
  if (bf)
    ctx.pool().parallel_for(kPoints * co_blocks, [&](int64_t b0, int64_t b1, int) {
      pack_bf16_weight_pairs(u, g.cin, 1, co_block, u2, b0, b1);
    });

  const float* bias_data = bias ? bias->f32() : nullptr;
  const int64_t tile_blocks = lanes / tb;
  // Output-channel blocks whose transformed weights (one point) fill about 256 KiB: they stay in L2
  // while every tile block of the group passes over them.
  const int64_t chunk = std::min(co_blocks, std::max<int64_t>(1, (int64_t(256) << 10) / (g.cin * co_block * 4)));
  const int64_t chunks = (co_blocks + chunk - 1) / chunk;
  const int32_t tap0 = 0;

  for (int64_t s0 = 0; s0 < g.slices; s0 += group_slices) {
    const int64_t s1 = std::min(g.slices, s0 + group_slices);
    const int64_t used = (s1 - s0) * g.plane_tiles;
    ctx.pool().parallel_for(g.cin, [&](int64_t c0, int64_t c1, int t) {
      float* scratch = per_thread + t * thread_floats;
      for (int64_t ci = c0; ci < c1; ++ci) {
        transform_input(g, isc, x.f32(), ci, s0, s1, v, lanes, scratch);
        if (used < lanes)  // pad lanes: finite zeros, their products are dropped
          for (int pt = 0; pt < kPoints; ++pt) std::memset(v + (pt * g.cin + ci) * lanes + used, 0, sizeof(float) * (lanes - used));
      }
    });
    if (bf)
      ctx.pool().parallel_for(kPoints * pairs, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t pt = i / pairs, pr = i % pairs;
          pack_bf16_pairs(v + pt * g.cin * lanes, g.cin, lanes, lanes, v2 + 2 * pt * pairs * lanes, pr, pr + 1);
        }
      });
    const int64_t items = kPoints * chunks * tile_blocks * chunk;
    ctx.pool().parallel_for(items, [&](int64_t begin, int64_t end, int) {
      alignas(64) float acc[16 * 64];
      for (int64_t item = begin; item < end; ++item) {
        const int64_t cb = ((item / (tile_blocks * chunk)) % chunks) * chunk + item % chunk;
        if (cb >= co_blocks) continue;
        const int64_t pt = item / (chunks * tile_blocks * chunk);
        const int64_t t = (item / chunk) % tile_blocks;
        if (bf)
          bf->conv_tile_fn(v2 + 2 * (pt * pairs * lanes + t * tb), u2 + 2 * (pt * co_blocks + cb) * pairs * co_block, &tap0,
                        1, static_cast<int>(pairs), lanes, acc);
        else
          k.conv_tile_fn(v + pt * g.cin * lanes + t * tb, u + (pt * co_blocks + cb) * g.cin * co_block, &tap0, 1,
                         static_cast<int>(g.cin), lanes, acc);
        for (int c = 0; c < co_block; ++c) {
          const int64_t co = cb * co_block + c;
          if (co >= g.cout) break;
          std::memcpy(m + (pt * g.cout + co) * lanes + t * tb, acc + c * tb, sizeof(float) * tb);
        }
      }
    });
    ctx.pool().parallel_for(g.cout, [&](int64_t c0, int64_t c1, int t) {
      float* scratch = per_thread + t * thread_floats;
      for (int64_t co = c0; co < c1; ++co)
        transform_output(g, m, co, s0, used, lanes, bias_data ? bias_data[co] : 0.0f, y.f32(), scratch);
    });
  }
  return Status::ok();
}

}  // namespace bl
