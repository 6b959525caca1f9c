// Winograd F(2x2x2, 3x3x3): each 2x2x2 output block is computed from its 4x4x4 input window as
//   Y = A^T [ sum_ci (G g G^T)[co][ci] (.) (B^T d B)[ci] ] A        (per dimension, Lavin & Gray 2015)
// with 64 products per block instead of 8 * 27 = 216 (3.4x fewer multiplies). The products at each
// of the 64 transform points form one matrix product over channels,
//   M_p[co][tile] = sum_ci U_p[co][ci] * V_p[ci][tile],
// which runs on the direct convolution's micro-kernel (one tap, "positions" = tiles).
//
// The transformed input and products are 8x the size of the input and output, so where they live decides
// the speed. Written for a group of slices and read back by the next phase, they went through L3 and memory,
// and the transforms took as long as the products (perf on the default-size UNet, bench/RESULTS.md "Winograd
// in blocks"). So where the volume is large each thread takes a block of tile rows at a time and does everything
// for it: transforms the block's input (V, sized to stay in its L2), runs the products one output-channel block
// at a time into a small M, and transforms those channels' outputs straight into y. Small volumes (too few
// blocks to share out, each of which would stream all of U) keep one group done in phases. Only the transformed
// weights U are shared between threads. A network layer keeps its U when the volume is small and U is not large
// (kKeepUTiles, kKeepUBytes): there the weight transform cost a quarter of the call, and a default-size UNet keeps
// ~75 MB; elsewhere U is made per call, so the thesis UNet's resident memory does not grow by 2.4x its 3x3x3
// weights (5 GB). Every transform is separable and runs one dimension at a time.
#include "conv3d_winograd.h"

#include "../kernels/bf16.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace bl {

namespace {

constexpr int kPoints = 64;  // 4x4x4 transform points; point p = (a * 4 + b) * 4 + c for (D, H, W)

// The input and output transforms are a fifth of a default-size UNet forward (perf), and ops/ is compiled for
// baseline x86-64, where their loops run 4 lanes wide. They are adds and subtracts only, so every ISA gives the same
// bits: GCC builds them once per ISA and the loader picks the one the CPU runs (ifunc). Elsewhere (clang, wasm,
// other CPUs) they are built once, for the target.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define BL_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BL_ISA_CLONES
#endif

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
constexpr int kLanes = 16;  // output channels transformed together (the loops over them vectorise)
inline void filter_points(const float* __restrict g0, const float* __restrict g1, const float* __restrict g2,
                          float* __restrict u0, float* __restrict u1, float* __restrict u2, float* __restrict u3) {
  for (int j = 0; j < kLanes; ++j) {
    u0[j] = g0[j];
    u1[j] = 0.5f * (g0[j] + g1[j] + g2[j]);
    u2[j] = 0.5f * (g0[j] - g1[j] + g2[j]);
    u3[j] = g2[j];
  }
}

// U[p * point_stride + (cb * cin + ci) * co_block + c] = (G g G^T) for output channel cb * co_block + c (zero past cout). The lanes are kLanes
// neighbouring output channels of one input channel, so each point's result is one contiguous 64-byte run of
// U: 64 whole-line stores per (ci, 16 output channels) where lanes over input channels needed a scattered store
// per value. Its cost matters where a layer has few tiles: at 4x5x4 (batch 2) a 128 -> 128 transform took
// ~9x the products' time before (0.28 us per channel pair).
void transform_weights(const WinoGeometry& g, const float* w, int co_block, int64_t cb0, int64_t cb1, float* u,
                       int64_t point_stride) {
  alignas(64) float taps[27][kLanes], t1[3][3][4][kLanes], t2[3][4][4][kLanes], t3[4][4][4][kLanes];
  for (int64_t cb = cb0; cb < cb1; ++cb)
    for (int64_t ci = 0; ci < g.cin; ++ci)
      for (int c0 = 0; c0 < co_block; c0 += kLanes) {
        const int lanes = static_cast<int>(std::min<int64_t>({kLanes, co_block - c0, g.cout - (cb * co_block + c0)}));
        if (lanes <= 0) {
          for (int p = 0; p < kPoints; ++p)
            std::memset(u + p * point_stride + (cb * g.cin + ci) * co_block + c0, 0, sizeof(float) * std::min(kLanes, co_block - c0));
          continue;
        }
        for (int j = 0; j < kLanes; ++j) {
          const float* src = w + ((cb * co_block + c0 + j) * g.cin + ci) * 27;
          for (int k = 0; k < 27; ++k) taps[k][j] = j < lanes ? src[k] : 0.0f;
        }
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
        const int width = std::min(kLanes, co_block - c0);
        for (int p = 0; p < kPoints; ++p)
          std::memcpy(u + p * point_stride + (cb * g.cin + ci) * co_block + c0, flat + p * kLanes, sizeof(float) * width);
      }
}

// Per-thread buffers of the input transform for blocks of up to `rows` tile rows.
struct InputScratch {
  int64_t ur_max, t1_floats, t2_floats;
  InputScratch(const WinoGeometry& g, int64_t rows) {
    const int64_t r = std::min(rows, g.slices * g.ty);
    // A segment is either part of one slice (4 planes, up to ty rows) or a run of whole slices of one batch item
    // (2 * run + 2 planes of all rows), whichever the block holds.
    const int64_t run = std::max<int64_t>(1, std::min(g.tz, r / g.ty));
    const int64_t planes = 2 * run + 2;
    ur_max = 2 * g.ty + 2;
    t1_floats = 4 * planes * ur_max * g.tx;
    t2_floats = 16 * planes * g.ty * g.tx;
  }
  int64_t floats(const WinoGeometry& g) const { return t1_floats + t2_floats + 2 * g.tx + 2 + 16; }
};

// V[p * point_stride + lane] for channel ci (v points at the channel's row) and the tile rows [r0, r1) of the
// whole convolution (row r = slice s * ty + tile row; slice s = batch item * tz + tile depth); lane =
// (r - r0) * tx + tile column. Whole slices of one batch item are done as one run, so the planes two neighbouring
// slices share are transformed once.
BL_ISA_CLONES void transform_input(const WinoGeometry& g, const InputScratch& sc, const float* x, int64_t ci, int64_t r0, int64_t r1,
                     float* v, int64_t point_stride, float* scratch) {
  float* t1 = scratch;                       // [c][zi][u][tx]
  float* t2 = t1 + sc.t1_floats;             // [c][b][zi][rows * tx]
  float* row = t2 + sc.t2_floats;            // one zero-padded input row
  const int64_t wp = 2 * g.tx + 2;
  const int64_t max_run = (sc.t2_floats / (16 * g.ty * g.tx) - 2) / 2;
  for (int64_t r = r0; r < r1;) {
    const int64_t s = r / g.ty, ya = r % g.ty, n = s / g.tz, tz = s % g.tz;
    int64_t slices = 1, rows = std::min(g.ty - ya, r1 - r);
    if (ya == 0 && rows == g.ty) {  // whole slices: extend the run within this batch item
      slices = std::min({(r1 - r) / g.ty, g.tz - tz, max_run});
      rows = g.ty;
    }
    const int64_t planes = 2 * slices + 2, ur = 2 * rows + 2;
    const float* xc = x + (n * g.cin + ci) * g.d * g.h * g.w;
    const int64_t cs = planes * ur * g.tx;  // W point c -> c + 1 in t1
    // W: each padded row of the planes -> 4 point rows over tx.
    for (int64_t zi = 0; zi < planes; ++zi) {
      const int64_t z = 2 * tz + zi - g.pd;
      for (int64_t u = 0; u < ur; ++u) {
        const int64_t yy = 2 * ya + u - g.ph;
        std::memset(row, 0, sizeof(float) * wp);
        if (z >= 0 && z < g.d && yy >= 0 && yy < g.h) std::memcpy(row + g.pw, xc + (z * g.h + yy) * g.w, sizeof(float) * g.w);
        float* o = t1 + (zi * ur + u) * g.tx;
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
    const int64_t rt = rows * g.tx;  // lanes of one slice of this segment
    const int64_t bs = planes * rt;  // H point b -> b + 1 in t2
    for (int c = 0; c < 4; ++c)
      for (int64_t zi = 0; zi < planes; ++zi)
        for (int64_t ty = 0; ty < rows; ++ty) {
          const float* q = t1 + ((c * planes + zi) * ur + 2 * ty) * g.tx;
          float* o = t2 + (c * 4 * planes + zi) * rt + ty * g.tx;
          input_rows(q, q + g.tx, q + 2 * g.tx, q + 3 * g.tx, o, o + bs, o + 2 * bs, o + 3 * bs, g.tx);
        }
    // D: planes 2k..2k+3 -> 4 point planes of slice tz + k, written straight into V.
    for (int64_t k = 0; k < slices; ++k) {
      const int64_t lane0 = (r + k * g.ty - r0) * g.tx;
      for (int c = 0; c < 4; ++c)
        for (int b = 0; b < 4; ++b) {
          const float* q = t2 + ((c * 4 + b) * planes + 2 * k) * rt;
          float* o = v + (b * 4 + c) * point_stride + lane0;
          const int64_t as = 16 * point_stride;  // point a -> a + 1
          input_rows(q, q + rt, q + 2 * rt, q + 3 * rt, o, o + as, o + 2 * as, o + 3 * as, rt);
        }
    }
    r += slices > 1 ? slices * g.ty : rows;
  }
}

constexpr int64_t kOutChunk = 64;  // lanes per output-transform step: its 56 rows stay in L1

// y[n][co] for the `used` lanes of a block starting at global lane `lane0` (= r0 * tx), from mc[p * point_stride
// + lane], the products of channel co.
BL_ISA_CLONES void transform_output(const WinoGeometry& g, const float* mc, int64_t point_stride, int64_t co, int64_t lane0,
                      int64_t used, float bias, float* y, float* scratch) {
  float* o1 = scratch;                   // [a'][b][c][chunk]
  float* o2 = o1 + 32 * kOutChunk;       // [a'][b'][c][chunk]
  float* o3 = o2 + 16 * kOutChunk;       // [a'][b'][c'][chunk]
  for (int64_t l0 = 0; l0 < used; l0 += kOutChunk) {
    const int64_t len = std::min(kOutChunk, used - l0);
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
      const int64_t lane = lane0 + l0 + l;
      const int64_t s = lane / g.plane_tiles, rem = lane % g.plane_tiles;
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

// Target size of one block's transformed input (per thread).
constexpr int64_t kBlockBytes = int64_t(3) << 19;  // 1.5 MiB of this core's 2 MiB L2
// Largest U the blocked schedule streams once per block (it has to stay in L3 between blocks).
constexpr int64_t kFusedUBytes = int64_t(16) << 20;
// Phased groups: transformed input + products of one group.
constexpr int64_t kGroupBytesCap = int64_t(128) << 20;
// A layer keeps its U across calls below this many output tiles (the weight transform then costs more than ~2% of
// the products: it reads each weight once, the products 64 * tiles / 27 times) and up to this size.
constexpr int64_t kKeepUTiles = 2048;
constexpr int64_t kKeepUBytes = int64_t(16) << 20;

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

bool winograd_applies(const Tensor& weight, const Conv3dParams& p) {
  return weight.shape[2] == 3 && weight.shape[3] == 3 && weight.shape[4] == 3 && p.stride[0] == 1 &&
         p.stride[1] == 1 && p.stride[2] == 1;
}

// Measured on the 2-core EPYC (bench/conv3d-algorithms.bench.ts): 2.5-4x faster from 128 channels up,
// about even at 64, slower at 32 and below, where the transforms cost as much as the products.
// Below ~64 output tiles (4x5x4 with batch 2: 24) the per-call weight transform outweighs the products it saves
// (bench/conv3d-algorithms.bench.ts: 128 -> 128 @4x5x4 direct 3.5 ms, Winograd 4.4 ms).
bool winograd_pays(int64_t cin, int64_t cout, int64_t tiles) { return cin >= 64 && cout >= 64 && tiles >= 64; }

Status conv3d_winograd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
                       Tensor& y) {
  const KernelTable& k = ctx.kernels();
  const WinoGeometry g = wino_geometry(x, weight, p);
  const int co_block = k.conv_co_block;
  const int64_t tb = k.conv_tile;
  const int64_t co_blocks = (g.cout + co_block - 1) / co_block;
  const int threads = ctx.threads();

  // Tile rows per block: the block's V (64 points x cin x lanes) stays within about kBlockBytes, so it is still in
  // L2 when the products of every output-channel block read it; among the row counts that fit, the one whose lanes
  // fill the micro-tiles best (padding lanes cost products).
  const int64_t total_rows = g.slices * g.ty;
  const int64_t max_lanes = std::max<int64_t>(tb, kBlockBytes / (kPoints * g.cin * static_cast<int64_t>(sizeof(float))) / tb * tb);
  const int64_t max_rows = std::min(total_rows, std::max<int64_t>(1, max_lanes / g.tx));
  int64_t block_rows = 1;
  double best = 0;
  for (int64_t rows = 1; rows <= max_rows; ++rows) {
    const int64_t blocks_n = (total_rows + rows - 1) / rows;
    const double fill = static_cast<double>(total_rows * g.tx) / static_cast<double>(blocks_n * round_up(rows * g.tx, tb));
    if (fill >= best - 1e-9) { best = fill; block_rows = rows; }
  }
  // The blocks above suit a U that stays in cache between blocks (each block reads all of it) and enough blocks to
  // share out. Otherwise (small volumes such as 8x10x8, or wide layers: 512 x 512 channels make a 64 MiB U) the
  // volume goes in groups of tile rows done in phases: every input of the group transformed into one V, the
  // products point by point (V_p and U_p stay in cache across output-channel blocks) into one M, then every output
  // transformed; a group has about cin * cout / (cin + cout) lanes, so streaming U once per group costs no more
  // than the group's own V and M, and V + M stay within kGroupBytesCap.
  const int64_t u_bytes = kPoints * g.cin * g.cout * static_cast<int64_t>(sizeof(float));
  const bool phased = u_bytes > kFusedUBytes || (total_rows + block_rows - 1) / block_rows < 4 * threads;
  if (phased) {
    const int64_t want_lanes = std::max<int64_t>(4 * tb, g.cin * g.cout / (g.cin + g.cout));
    const int64_t cap_lanes = std::max<int64_t>(tb, kGroupBytesCap / (kPoints * (g.cin + g.cout) * static_cast<int64_t>(sizeof(float))));
    block_rows = std::min(total_rows, std::max<int64_t>(1, std::min(want_lanes, cap_lanes) / g.tx));
  }
  const int64_t blocks = (total_rows + block_rows - 1) / block_rows;
  const int64_t lanes = round_up(block_rows * g.tx, tb);

  // bf16 precision: the products at each point run on the bf16 tile, from U and V rounded to bf16 with input
  // channels in pairs (kernels/bf16.h); the transforms and M stay fp32.
  const Bf16Kernels* bf = ctx.bf16();
  if (bf && (bf->conv_co_block != co_block || bf->conv_tile != tb || bf->pair_multiple != 1)) bf = nullptr;
  const int64_t pairs = (g.cin + 1) / 2;
  const InputScratch isc(g, block_rows);
  // The point strides of U, V and M are padded by one cache line: at 2^k bytes (128 x 128 channels: 64 KiB) the
  // 64 points of one (channel, lane) run would fall into one L1 set, and the transforms that write or read all 64
  // at once would evict their own lines.
  const int64_t u_point = round_up(co_blocks * co_block * g.cin, 16) + 16;
  const int64_t v_point = round_up(g.cin * lanes, 16) + 16;
  const int64_t u_floats = kPoints * u_point;
  const int64_t u2_floats = bf ? round_up(kPoints * co_blocks * co_block * pairs, 16) : 0;  // 2 halves = 1 float
  const int64_t v_floats = kPoints * v_point;
  const int64_t v_block_floats = v_floats + (bf ? round_up(kPoints * pairs * lanes, 16) : 0);  // V, its bf16 pairs
  // M: the whole group's when phased ([p][cout][lanes]), else one output-channel block's per thread.
  const int64_t m_point = round_up((phased ? g.cout : co_block) * lanes, 16) + (phased ? 16 : 0);
  const int64_t m_floats = kPoints * m_point;
  const int64_t work_floats = round_up(std::max<int64_t>(isc.floats(g), 56 * kOutChunk), 16);
  const int64_t thread_floats = (phased ? 0 : v_block_floats + m_floats) + work_floats;
  const int64_t shared_floats = phased ? v_block_floats + m_floats : 0;
  // U lives in the layer's cache (PackedConvWeights) where it is kept, else in scratch before V and M. The lock is
  // held for the whole call, so another context cannot remake the cache underneath this one.
  const bool keep_u = p.packed && g.slices * g.plane_tiles < kKeepUTiles && u_bytes <= kKeepUBytes;
  std::unique_lock<std::mutex> cache_lock;
  bool u_ready = false;
  float* u = nullptr;
  if (keep_u) {
    cache_lock = std::unique_lock<std::mutex>(p.packed->mutex);
    std::vector<float>& cached = p.packed->winograd_u;
    u_ready = p.packed->winograd_kernels == &k && p.packed->winograd_bf16 == bf &&
              static_cast<int64_t>(cached.size()) == u_floats + u2_floats;
    if (!u_ready) {
      p.packed->winograd_kernels = nullptr;
      cached.assign(static_cast<size_t>(u_floats + u2_floats), 0.0f);
    }
    u = cached.data();
  }
  float* scratch = static_cast<float*>(ctx.scratch().reserve(
      sizeof(float) * ((keep_u ? 0 : u_floats + u2_floats) + shared_floats + thread_floats * threads)));
  if (!keep_u) u = scratch;
  uint16_t* u2 = reinterpret_cast<uint16_t*>(u + u_floats);
  float* shared = keep_u ? scratch : u + u_floats + u2_floats;
  float* per_thread = shared + shared_floats;

  if (!u_ready) {
    ctx.pool().parallel_for(co_blocks, [&](int64_t b0, int64_t b1, int) {
      transform_weights(g, weight.f32(), co_block, b0, b1, u, u_point);
    });
    if (bf)
      ctx.pool().parallel_for(kPoints * co_blocks, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t pt = i / co_blocks, cb = i % co_blocks;
          pack_bf16_weight_pairs(u + pt * u_point, g.cin, 1, co_block, u2 + 2 * pt * co_blocks * pairs * co_block, cb, cb + 1);
        }
      });
    if (keep_u) {
      p.packed->winograd_kernels = &k;
      p.packed->winograd_bf16 = bf;
    }
  }

  const int64_t total_lanes = total_rows * g.tx;
  const float* bias_data = bias ? bias->f32() : nullptr;
  const int64_t tiles = lanes / tb;
  const int32_t tap0 = 0;
  auto block_used = [&](int64_t blk) { return std::min(total_lanes, (blk + 1) * block_rows * g.tx) - blk * block_rows * g.tx; };
  // One block's V for channels [c0, c1), zeros in the pad lanes.
  auto transform_block = [&](int64_t blk, int64_t c0, int64_t c1, float* v, float* work) {
    const int64_t r0 = blk * block_rows, r1 = std::min(total_rows, r0 + block_rows), used = block_used(blk);
    for (int64_t ci = c0; ci < c1; ++ci) {
      transform_input(g, isc, x.f32(), ci, r0, r1, v + ci * lanes, v_point, work);
      if (used < lanes)  // pad lanes: finite zeros, their products are dropped
        for (int pt = 0; pt < kPoints; ++pt) std::memset(v + pt * v_point + ci * lanes + used, 0, sizeof(float) * (lanes - used));
    }
  };
  auto pack_points = [&](float* v, int64_t p0, int64_t p1) {
    uint16_t* v2 = reinterpret_cast<uint16_t*>(v + v_floats);
    for (int64_t pt = p0; pt < p1; ++pt)
      pack_bf16_pairs(v + pt * v_point, g.cin, lanes, lanes, v2 + 2 * pt * pairs * lanes, 0, pairs);
  };
  // acc[co_block][tb] = the products of output-channel block cb at point pt for micro-tile `tile` of v.
  auto products = [&](const float* v, int64_t pt, int64_t cb, int64_t tile, float* acc) {
    if (bf)
      bf->conv_tile_fn(reinterpret_cast<const uint16_t*>(v + v_floats) + 2 * (pt * pairs * lanes + tile * tb),
                       u2 + 2 * (pt * co_blocks + cb) * pairs * co_block, &tap0, 1, static_cast<int>(pairs), lanes, acc);
    else
      k.conv_tile_fn(v + pt * v_point + tile * tb, u + pt * u_point + cb * g.cin * co_block, &tap0, 1,
                     static_cast<int>(g.cin), lanes, acc);
  };

  if (phased) {
    float* v = shared;
    float* m = shared + v_block_floats;
    // Output-channel blocks whose U (one point) fill about 256 KiB stay in L2 while every micro-tile passes over them.
    const int64_t chunk = std::min(co_blocks, std::max<int64_t>(1, (int64_t(256) << 10) / (g.cin * co_block * 4)));
    const int64_t chunks = (co_blocks + chunk - 1) / chunk;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t used = block_used(blk), group_tiles = (used + tb - 1) / tb;
      ctx.pool().parallel_for(g.cin, [&](int64_t c0, int64_t c1, int t) { transform_block(blk, c0, c1, v, per_thread + t * thread_floats); });
      if (bf) ctx.pool().parallel_for(kPoints, [&](int64_t p0, int64_t p1, int) { pack_points(v, p0, p1); });
      ctx.pool().parallel_for(kPoints * chunks * group_tiles * chunk, [&](int64_t begin, int64_t end, int) {
        alignas(64) float acc[16 * 64];
        for (int64_t item = begin; item < end; ++item) {
          const int64_t cb = ((item / (group_tiles * chunk)) % chunks) * chunk + item % chunk;
          if (cb >= co_blocks) continue;
          const int64_t pt = item / (chunks * group_tiles * chunk), tile = (item / chunk) % group_tiles;
          products(v, pt, cb, tile, acc);
          for (int c = 0; c < co_block && cb * co_block + c < g.cout; ++c)
            std::memcpy(m + pt * m_point + (cb * co_block + c) * lanes + tile * tb, acc + c * tb, sizeof(float) * tb);
        }
      });
      ctx.pool().parallel_for(g.cout, [&](int64_t c0, int64_t c1, int t) {
        for (int64_t co = c0; co < c1; ++co)
          transform_output(g, m + co * lanes, m_point, co, blk * block_rows * g.tx, used, bias_data ? bias_data[co] : 0.0f,
                           y.f32(), per_thread + t * thread_floats);
      });
    }
    return Status::ok();
  }

  ctx.pool().parallel_for(blocks, [&](int64_t b0, int64_t b1, int t) {
    float* v = per_thread + t * thread_floats;
    float* m = v + v_block_floats;
    float* work = m + m_floats;
    alignas(64) float acc[16 * 64];
    for (int64_t blk = b0; blk < b1; ++blk) {
      transform_block(blk, 0, g.cin, v, work);
      if (bf) pack_points(v, 0, kPoints);
      for (int64_t cb = 0; cb < co_blocks; ++cb) {
        for (int pt = 0; pt < kPoints; ++pt)
          for (int64_t tile = 0; tile < tiles; ++tile) {
            products(v, pt, cb, tile, acc);
            for (int c = 0; c < co_block; ++c)
              std::memcpy(m + pt * m_point + c * lanes + tile * tb, acc + c * tb, sizeof(float) * tb);
          }
        for (int c = 0; c < co_block && cb * co_block + c < g.cout; ++c)
          transform_output(g, m + c * lanes, m_point, cb * co_block + c, blk * block_rows * g.tx, block_used(blk),
                           bias_data ? bias_data[cb * co_block + c] : 0.0f, y.f32(), work);
      }
    }
  });
  return Status::ok();
}

}  // namespace bl
