// Winograd F(m x m x m, 3x3x3) for m = 2 and m = 4: each m^3 block of outputs is computed from its alpha^3 input
// window (alpha = m + 2 transform points per axis) as
//   Y = A^T [ sum_ci (G g G^T)[co][ci] (.) (B^T d B)[ci] ] A        (per dimension, Lavin & Gray 2015)
// F(2,3) takes 64 products per 8 outputs and F(4,3) 216 per 64, where the direct convolution takes 27 per output:
// 3.4x and 8x fewer multiplies. The products at each of the alpha^3 transform points form one matrix product over
// channels,
//   M_p[co][tile] = sum_ci U_p[co][ci] * V_p[ci][tile],
// which runs on the direct convolution's micro-kernel (one tap, "positions" = tiles). One code path serves both
// tile sizes (templates on m): only the per-axis transforms (struct Tile) differ, and the schedule below sizes
// everything by alpha^3.
//
// The transformed input and products are alpha^3 / m^3 the size of the input and output (8x for F(2,3), 3.4x for
// F(4,3)), so where they live decides the speed. Written for a group of slices and read back by the next phase,
// they went through L3 and memory, and the transforms took as long as the products (perf on the default-size UNet,
// bench/RESULTS.md "Winograd in blocks"). So where the volume is large each thread takes a block of tile rows at a
// time and does everything for it: transforms the block's input (V, sized to stay in its L2 where one micro-tile of
// lanes allows), runs the products into M (one output-channel block at a time while V stays in L2, else one point
// at a time) and transforms the outputs straight into y. Small volumes (too few blocks to share out, each of which
// would stream all of U) and wide layers keep groups done in phases. Only the transformed weights U are shared
// between threads. A network layer keeps its U when the volume is small and U is not large (kKeepUOutputs,
// kKeepUBytes): there the weight transform cost a quarter of the call; elsewhere U is made per call, so the thesis
// UNet's resident memory does not grow by 2.4x (F(2,3)) or 8x (F(4,3)) its 3x3x3 weights. Every transform is
// separable and runs one dimension at a time.
//
// F(4,3) uses the points 0, 1, -1, 2, -2 and infinity with G scaled to the factors 1/4, 1/6 and 1/24 (Lavin & Gray's
// matrices): the best-conditioned choice for six points, and B^T and A^T then hold only small integers. Its
// rounding error is still larger than F(2,3)'s (the transforms scale values by up to 5 per axis before the products
// and recombine them with weights up to 8 after): relative L2 against an fp64 reference 1e-7 to 6e-7 for F(2,3)
// and 1e-6 to 7e-6 for F(4,3) from 5 to 512 input channels, 2.4e-5 against F(2,3) at 1280 (it grows with the
// square root of the channels), within the 1e-4 budget. That is why F(4,3) is fp32 only: the bf16 products
// (ctx.bf16()) round U and V to 8-bit mantissas (4e-3 each), which F(2,3)'s transforms already bring to 5e-3 of the
// output, and F(4,3)'s amplify rounding about 10x more (as in fp32), past the 1e-2 budget. So F(4,3) computes in
// fp32 in a bf16 context too, where it outruns the bf16 products (conv3d.cpp), and bf16 products take F(2,3) only.
// Where F(4,3) pays is winograd_tile's decision.
#include "conv3d_winograd.h"

#include "../kernels/bf16.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace bl {

namespace {

// The input and output transforms are a fifth of a default-size UNet forward (perf), and ops/ is compiled for
// baseline x86-64, where their loops run 4 lanes wide. They are adds, subtracts and multiplies by 2, 4 or 8 (exact in
// binary, so a fused multiply-add rounds as the separate operations do), so every ISA gives the same bits: GCC builds
// them once per ISA and the loader picks the one the CPU runs (ifunc). Elsewhere (clang, wasm, other CPUs) they are
// built once, for the target.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define BL_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BL_ISA_CLONES
#endif

constexpr int kLanes = 16;  // filters the weight transform takes together (the loops vectorise over them)

// The per-axis transforms of F(m, 3), each over n neighbouring lanes of separate rows (so the loops vectorise):
//   input:      B^T, the alpha window rows r[j] -> the alpha point rows o[j]
//   row_points: B^T along one zero-padded input row: tile t's window is row[m * t .. m * t + alpha) -> o[j][t]
//   output:     A^T, the alpha point rows -> the m output rows
//   filter:     G, the 3 tap rows -> the alpha point rows, kLanes filters at once
template <int M> struct Tile;

// Points 0, 1, -1, infinity.
template <> struct Tile<2> {
  static constexpr int kAlpha = 4;
  static inline void bt(float d0, float d1, float d2, float d3, float& o0, float& o1, float& o2, float& o3) {
    o0 = d0 - d2;
    o1 = d1 + d2;
    o2 = d2 - d1;
    o3 = d1 - d3;
  }
  static inline void input(const float* __restrict r0, const float* __restrict r1, const float* __restrict r2,
                           const float* __restrict r3, float* __restrict o0, float* __restrict o1,
                           float* __restrict o2, float* __restrict o3, int64_t n) {
    for (int64_t i = 0; i < n; ++i) bt(r0[i], r1[i], r2[i], r3[i], o0[i], o1[i], o2[i], o3[i]);
  }
  static inline void row_points(const float* __restrict row, float* __restrict o0, float* __restrict o1,
                                float* __restrict o2, float* __restrict o3, int64_t n) {
    for (int64_t t = 0; t < n; ++t)
      bt(row[2 * t], row[2 * t + 1], row[2 * t + 2], row[2 * t + 3], o0[t], o1[t], o2[t], o3[t]);
  }
  static inline void output(const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
                            const float* __restrict m3, float* __restrict y0, float* __restrict y1, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      y0[i] = m0[i] + m1[i] + m2[i];
      y1[i] = m1[i] - m2[i] - m3[i];
    }
  }
  static inline void filter(const float* __restrict g0, const float* __restrict g1, const float* __restrict g2,
                            float* __restrict u0, float* __restrict u1, float* __restrict u2, float* __restrict u3) {
    for (int j = 0; j < kLanes; ++j) {
      u0[j] = g0[j];
      u1[j] = 0.5f * (g0[j] + g1[j] + g2[j]);
      u2[j] = 0.5f * (g0[j] - g1[j] + g2[j]);
      u3[j] = g2[j];
    }
  }
  // The same over arrays of row pointers or with row strides, as the transform loops call them.
  static inline void input(const float* const* r, float* const* o, int64_t n) {
    input(r[0], r[1], r[2], r[3], o[0], o[1], o[2], o[3], n);
  }
  static inline void row_points(const float* row, float* o, int64_t os, int64_t n) {
    row_points(row, o, o + os, o + 2 * os, o + 3 * os, n);
  }
  static inline void output(const float* q, int64_t qs, float* o, int64_t os, int64_t n) {
    output(q, q + qs, q + 2 * qs, q + 3 * qs, o, o + os, n);
  }
  static inline void filter(const float* g, int64_t gs, float* u, int64_t us) {
    filter(g, g + gs, g + 2 * gs, u, u + us, u + 2 * us, u + 3 * us);
  }
};

// Points 0, 1, -1, 2, -2, infinity. B^T's rows (4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
// (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1) are regrouped so that every multiply is by 2 or 4
// (-5 d = -4 d - d); A^T's rows (1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)
// share the sums and differences of points +-1 and +-2.
template <> struct Tile<4> {
  static constexpr int kAlpha = 6;
  static inline void bt(float d0, float d1, float d2, float d3, float d4, float d5, float& o0, float& o1, float& o2,
                        float& o3, float& o4, float& o5) {
    const float e = d4 - d2, f = 2.0f * (d3 - d1);
    o0 = 4.0f * (d0 - d2) + e;
    o1 = (d3 + d4) - 4.0f * (d1 + d2);
    o2 = (d4 - d3) + 4.0f * (d1 - d2);
    o3 = e + f;
    o4 = e - f;
    o5 = 4.0f * (d1 - d3) + (d5 - d3);
  }
  static inline void input(const float* __restrict r0, const float* __restrict r1, const float* __restrict r2,
                           const float* __restrict r3, const float* __restrict r4, const float* __restrict r5,
                           float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3,
                           float* __restrict o4, float* __restrict o5, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      bt(r0[i], r1[i], r2[i], r3[i], r4[i], r5[i], o0[i], o1[i], o2[i], o3[i], o4[i], o5[i]);
  }
  static inline void row_points(const float* __restrict row, float* __restrict o0, float* __restrict o1,
                                float* __restrict o2, float* __restrict o3, float* __restrict o4,
                                float* __restrict o5, int64_t n) {
    for (int64_t t = 0; t < n; ++t) {
      const float* d = row + 4 * t;
      bt(d[0], d[1], d[2], d[3], d[4], d[5], o0[t], o1[t], o2[t], o3[t], o4[t], o5[t]);
    }
  }
  static inline void output(const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
                            const float* __restrict m3, const float* __restrict m4, const float* __restrict m5,
                            float* __restrict y0, float* __restrict y1, float* __restrict y2, float* __restrict y3,
                            int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const float s1 = m1[i] + m2[i], d1 = m1[i] - m2[i], s2 = m3[i] + m4[i], d2 = m3[i] - m4[i];
      y0[i] = m0[i] + s1 + s2;
      y1[i] = d1 + 2.0f * d2;
      y2[i] = s1 + 4.0f * s2;
      y3[i] = (d1 + 8.0f * d2) + m5[i];
    }
  }
  static inline void filter(const float* __restrict g0, const float* __restrict g1, const float* __restrict g2,
                            float* __restrict u0, float* __restrict u1, float* __restrict u2, float* __restrict u3,
                            float* __restrict u4, float* __restrict u5) {
    for (int j = 0; j < kLanes; ++j) {
      const float s = g0[j] + g2[j], t = g0[j] + 4.0f * g2[j];
      u0[j] = 0.25f * g0[j];
      u1[j] = (s + g1[j]) * (-1.0f / 6.0f);
      u2[j] = (s - g1[j]) * (-1.0f / 6.0f);
      u3[j] = (t + 2.0f * g1[j]) * (1.0f / 24.0f);
      u4[j] = (t - 2.0f * g1[j]) * (1.0f / 24.0f);
      u5[j] = g2[j];
    }
  }
  static inline void input(const float* const* r, float* const* o, int64_t n) {
    input(r[0], r[1], r[2], r[3], r[4], r[5], o[0], o[1], o[2], o[3], o[4], o[5], n);
  }
  static inline void row_points(const float* row, float* o, int64_t os, int64_t n) {
    row_points(row, o, o + os, o + 2 * os, o + 3 * os, o + 4 * os, o + 5 * os, n);
  }
  static inline void output(const float* q, int64_t qs, float* o, int64_t os, int64_t n) {
    output(q, q + qs, q + 2 * qs, q + 3 * qs, q + 4 * qs, q + 5 * qs, o, o + os, o + 2 * os, o + 3 * os, n);
  }
  static inline void filter(const float* g, int64_t gs, float* u, int64_t us) {
    filter(g, g + gs, g + 2 * gs, u, u + us, u + 2 * us, u + 3 * us, u + 4 * us, u + 5 * us);
  }
};

struct WinoGeometry {
  int64_t n, cin, cout, d, h, w;
  int64_t pd, ph, pw;     // padding before, per dim
  int64_t od, oh, ow;     // output size
  int64_t tz, ty, tx;     // m x m x m output tiles per dim (ceil of output / m)
  int64_t plane_tiles;    // ty * tx: tiles in one slice
  int64_t slices;         // n * tz
};

WinoGeometry wino_geometry(const Tensor& x, const Tensor& wt, const Conv3dParams& p, int m) {
  WinoGeometry g{};
  g.n = x.shape[0]; g.cin = x.shape[1]; g.d = x.shape[2]; g.h = x.shape[3]; g.w = x.shape[4];
  g.cout = wt.shape[0];
  g.pd = p.pad_before[0]; g.ph = p.pad_before[1]; g.pw = p.pad_before[2];
  g.od = g.d + p.pad_before[0] + p.pad_after[0] - 2;
  g.oh = g.h + p.pad_before[1] + p.pad_after[1] - 2;
  g.ow = g.w + p.pad_before[2] + p.pad_after[2] - 2;
  g.tz = (g.od + m - 1) / m; g.ty = (g.oh + m - 1) / m; g.tx = (g.ow + m - 1) / m;
  g.plane_tiles = g.ty * g.tx;
  g.slices = g.n * g.tz;
  return g;
}

// U[p * point_stride + ((cb - cb0) * cin + ci) * co_block + c] = (G g G^T) at point p for output channel
// cb * co_block + c (zero past cout), cb in [cb0, cb1). The kLanes lanes of one pass are neighbouring values of that
// layout (consecutive (ci, c)), and kWeightRun of them are collected before being stored, so each point receives one
// contiguous run: points lie cin * cout values apart (1 MiB at 512 x 512), and storing 16 values per point at a time
// touched 216 pages per pass, which took a third of an F(4,3) call at 512 -> 512, 12x16x12. Its cost matters where
// a layer has few tiles: at 4x5x4 (batch 2) a 128 -> 128 transform took ~9x the products' time before (0.28 us per
// channel pair).
//
// Where a layer cannot keep U (above kKeepUBytes, or a one-off op) this runs every call, and F(4,3)'s 216 points
// make it 3.4x F(2,3)'s work, so it is built per ISA like the input and output transforms. Its only inexact
// operations, F(4,3)'s products by 1/6 and 1/24, come last, with nothing a fused multiply-add could absorb, so the
// clones agree bit for bit here too.
constexpr int64_t kWeightRun = 256;  // U values per point collected before they are stored (buf: alpha^3 * this)
template <int M>
BL_ISA_CLONES void transform_weights(const WinoGeometry& g, const float* w, int co_block, int64_t cb0, int64_t cb1,
                                     float* u, int64_t point_stride, float* buf) {
  constexpr int A = Tile<M>::kAlpha, P = A * A * A;
  alignas(64) float taps[27][kLanes], t1[3][3][A][kLanes], t2[3][A][A][kLanes];
  const int64_t run = g.cin * co_block;  // U values of one output-channel block at one point
  for (int64_t cb = cb0; cb < cb1; ++cb)
    for (int64_t f0 = 0; f0 < run; f0 += kWeightRun) {
      const int64_t fn = std::min(kWeightRun, run - f0);
      for (int64_t l0 = 0; l0 < fn; l0 += kLanes) {
        for (int j = 0; j < kLanes; ++j) {
          const int64_t f = f0 + l0 + j, ci = f / co_block, co = cb * co_block + f % co_block;
          if (f < run && co < g.cout)
            for (int k = 0; k < 27; ++k) taps[k][j] = w[(co * g.cin + ci) * 27 + k];
          else
            for (int k = 0; k < 27; ++k) taps[k][j] = 0.0f;
        }
        for (int kd = 0; kd < 3; ++kd)  // W
          for (int kh = 0; kh < 3; ++kh) Tile<M>::filter(taps[kd * 9 + kh * 3], kLanes, t1[kd][kh][0], kLanes);
        for (int kd = 0; kd < 3; ++kd)  // H
          for (int c = 0; c < A; ++c) Tile<M>::filter(t1[kd][0][c], A * kLanes, t2[kd][0][c], A * kLanes);
        for (int b = 0; b < A; ++b)  // D, into buf[p][kWeightRun]
          for (int c = 0; c < A; ++c)
            Tile<M>::filter(t2[0][b][c], A * A * kLanes, buf + (b * A + c) * kWeightRun + l0, A * A * kWeightRun);
      }
      float* dst = u + (cb - cb0) * run + f0;
      for (int p = 0; p < P; ++p) std::memcpy(dst + p * point_stride, buf + p * kWeightRun, sizeof(float) * fn);
    }
}

// Per-thread buffers of the input transform for blocks of up to `rows` tile rows.
struct InputScratch {
  int64_t run;  // most whole slices transformed together
  int64_t t1_floats, t2_floats, plane_floats, spill_floats;
  InputScratch(const WinoGeometry& g, int m, int64_t rows) {
    const int64_t alpha = m + 2;
    // A segment is either part of one slice (alpha planes, up to ty rows) or a run of whole slices of one batch item
    // (m * run + 2 planes of all rows), whichever the block holds.
    run = std::max<int64_t>(1, std::min(g.tz, std::min(rows, g.slices * g.ty) / g.ty));
    t1_floats = alpha * m * m * (run + 1) * (g.ty + 1) * g.tx;
    t2_floats = alpha * alpha * m * (run + 1) * g.ty * g.tx;
    plane_floats = m * (g.ty + 1) * m * g.tx + alpha;  // the last window reads past the last row
    spill_floats = 2 * m * (g.ty + 1);
  }
  int64_t floats() const { return t1_floats + t2_floats + plane_floats + spill_floats + 16; }
};

// V[p * point_stride + lane] for channel ci (v points at the channel's V) and the tile rows [r0, r1) of the
// whole convolution (row r = slice s * ty + tile row; slice s = batch item * tz + tile depth); lane =
// (r - r0) * tx + tile column. Whole slices of one batch item are done as one run, so the planes two neighbouring
// slices share are transformed once.
//
// Windows overlap (alpha values for every m), so a loop over the windows along an axis is a strided read, and a loop
// over the tx windows of one row (4 at 16x20x16 for F(4,3)) left the vector units idle. So each step runs over many
// rows at once. Planes and rows are stored split by residue, t1[c][z % m][z / m][y % m][y / m][tile column] after the
// W step, t2[b][c][z % m][z / m][tile row][tile column] after the H step: window row k of tile row ty is then row
// (k % m, ty + k / m), so the H step for one plane is one loop over its rows * tx lanes and the D step one loop over
// the segment's slices * rows * tx lanes, written straight into V. For the W step a plane's padded rows are laid end
// to end m * tx values apart (the 2 values a row's last window reads past that are kept aside), so one loop covers
// all windows of the plane and only each row's last window is redone with its own 2 values.
template <int M>
BL_ISA_CLONES void transform_input(const WinoGeometry& g, const InputScratch& sc, const float* x, int64_t ci, int64_t r0,
                                   int64_t r1, float* v, int64_t point_stride, float* scratch) {
  constexpr int A = Tile<M>::kAlpha;
  float* t1 = scratch;
  float* t2 = t1 + sc.t1_floats;
  float* plane = t2 + sc.t2_floats;         // [y % m][y / m][m * tx]: one plane's padded rows
  float* spill = plane + sc.plane_floats;   // [y % m][y / m][2]: the values past each row's m * tx
  const int64_t rw = M * g.tx;
  const float* in[A];
  float* out[A];
  for (int64_t r = r0; r < r1;) {
    const int64_t s = r / g.ty, ya = r % g.ty, n = s / g.tz, tz = s % g.tz;
    int64_t slices = 1, rows = std::min(g.ty - ya, r1 - r);
    if (ya == 0 && rows == g.ty) {  // whole slices: extend the run within this batch item
      slices = std::min({(r1 - r) / g.ty, g.tz - tz, sc.run});
      rows = g.ty;
    }
    const int64_t planes = M * slices + 2, ur = M * rows + 2;
    const int64_t zq = slices + 1, uq = rows + 1, rt = rows * g.tx;
    const int64_t plane_lanes = M * uq * g.tx;  // W outputs per plane, unused residue rows included
    const int64_t c1 = M * zq * plane_lanes;    // W point c -> c + 1 in t1
    const int64_t c2 = M * zq * rt, b2 = A * c2;  // H point c -> c + 1, b -> b + 1 in t2
    const float* xc = x + (n * g.cin + ci) * g.d * g.h * g.w;
    // Padded x' = x + pw of a row: data in [lo, hi) of the m * tx values, then 2 spilled values.
    const int64_t lo = std::min<int64_t>(g.pw, rw), hi = std::min<int64_t>(g.pw + g.w, rw);
    // W: each plane's padded rows -> alpha point rows over tx.
    for (int64_t zi = 0; zi < planes; ++zi) {
      const int64_t z = M * tz + zi - g.pd;
      float* o = t1 + ((zi % M) * zq + zi / M) * plane_lanes;
      if (z < 0 || z >= g.d) {
        for (int c = 0; c < A; ++c) std::memset(o + c * c1, 0, sizeof(float) * plane_lanes);
        continue;
      }
      for (int64_t ri = 0; ri < M * uq; ++ri) {  // ri = (y % m) * uq + y / m
        const int64_t u = M * (ri % uq) + ri / uq, yy = M * ya + u - g.ph;
        float* p = plane + ri * rw;
        float* sp = spill + 2 * ri;
        if (u >= ur || yy < 0 || yy >= g.h) {
          std::memset(p, 0, sizeof(float) * rw);
          sp[0] = sp[1] = 0.0f;
          continue;
        }
        const float* xr = xc + (z * g.h + yy) * g.w;
        for (int64_t i = 0; i < lo; ++i) p[i] = 0.0f;
        if (hi > lo) std::memcpy(p + lo, xr + (lo - g.pw), sizeof(float) * (hi - lo));
        for (int64_t i = std::max(lo, hi); i < rw; ++i) p[i] = 0.0f;
        for (int j = 0; j < 2; ++j) {
          const int64_t xx = rw + j - g.pw;
          sp[j] = xx >= 0 && xx < g.w ? xr[xx] : 0.0f;
        }
      }
      Tile<M>::row_points(plane, o, c1, plane_lanes);
      for (int64_t ri = 0; ri < M * uq; ++ri) {  // each row's last window, with its own spilled values
        const int64_t i = ri * g.tx + g.tx - 1;
        float d[A];
        for (int k = 0; k < M; ++k) d[k] = plane[M * i + k];
        d[M] = spill[2 * ri];
        d[M + 1] = spill[2 * ri + 1];
        Tile<M>::row_points(d, o + i, c1, 1);
      }
    }
    // H: window rows m ty + k of each plane -> alpha point rows, for all tile rows at once.
    for (int c = 0; c < A; ++c)
      for (int64_t zi = 0; zi < planes; ++zi) {
        const int64_t pz = (zi % M) * zq + zi / M;
        for (int k = 0; k < A; ++k) in[k] = t1 + c * c1 + pz * plane_lanes + ((k % M) * uq + k / M) * g.tx;
        for (int b = 0; b < A; ++b) out[b] = t2 + b * b2 + c * c2 + pz * rt;
        Tile<M>::input(in, out, rt);
      }
    // D: window planes m k + j -> alpha point planes of slices tz + k, for all slices of the segment at once, into V.
    const int64_t lane0 = (r - r0) * g.tx;
    for (int b = 0; b < A; ++b)
      for (int c = 0; c < A; ++c) {
        for (int j = 0; j < A; ++j) in[j] = t2 + b * b2 + c * c2 + ((j % M) * zq + j / M) * rt;
        for (int a = 0; a < A; ++a) out[a] = v + ((a * A + b) * A + c) * point_stride + lane0;
        Tile<M>::input(in, out, slices * rt);
      }
    r += slices > 1 ? slices * g.ty : rows;
  }
}

// Lanes per output-transform step, so that its rows (m alpha^2 + m^2 alpha + m^3 of them: 56 for F(2,3), 272 for
// F(4,3)) stay in L1.
template <int M> struct OutputStep {
  static constexpr int A = Tile<M>::kAlpha;
  static constexpr int64_t kChunk = M == 2 ? 64 : 32;
  static constexpr int64_t kRows = M * A * A + M * M * A + M * M * M;
};

// y[n][co] for the `used` lanes of a block starting at global lane `lane0` (= r0 * tx), from mc[p * point_stride
// + lane], the products of channel co.
template <int M>
BL_ISA_CLONES void transform_output(const WinoGeometry& g, const float* mc, int64_t point_stride, int64_t co,
                                    int64_t lane0, int64_t used, float bias, float* y, float* scratch) {
  constexpr int A = Tile<M>::kAlpha;
  constexpr int64_t ch = OutputStep<M>::kChunk;
  float* o1 = scratch;                   // [a'][b][c][chunk]
  float* o2 = o1 + M * A * A * ch;       // [a'][b'][c][chunk]
  float* o3 = o2 + M * M * A * ch;       // [a'][b'][c'][chunk]
  for (int64_t l0 = 0; l0 < used; l0 += ch) {
    const int64_t len = std::min(ch, used - l0);
    for (int bc = 0; bc < A * A; ++bc)  // D
      Tile<M>::output(mc + bc * point_stride + l0, A * A * point_stride, o1 + bc * ch, A * A * ch, len);
    for (int a = 0; a < M; ++a)  // H
      for (int c = 0; c < A; ++c)
        Tile<M>::output(o1 + (a * A * A + c) * ch, A * ch, o2 + (a * M * A + c) * ch, A * ch, len);
    for (int ab = 0; ab < M * M; ++ab)  // W
      Tile<M>::output(o2 + ab * A * ch, ch, o3 + ab * M * ch, ch, len);
    // Into y a tile row at a time (tiles t0..t1 of tile row r, m consecutive values each): splitting every lane's
    // index into batch item, depth, row and column, then storing its m^3 values, took twice the time of the
    // transform's arithmetic at F(4,3) (perf).
    for (int64_t l = 0; l < len;) {
      const int64_t lane = lane0 + l0 + l, r = lane / g.tx, t0 = lane % g.tx, t1 = std::min(g.tx, t0 + len - l);
      const int64_t s = r / g.ty, ty = r % g.ty, n = s / g.tz, tz = s % g.tz;
      const int64_t full = std::min(t1, g.ow / M);  // tiles before full are whole in W
      float* yc = y + (n * g.cout + co) * g.od * g.oh * g.ow;
      for (int a = 0; a < M && M * tz + a < g.od; ++a)
        for (int b = 0; b < M && M * ty + b < g.oh; ++b) {
          float* out = yc + ((M * tz + a) * g.oh + M * ty + b) * g.ow;
          const float* o = o3 + (a * M + b) * M * ch + l - t0;
          for (int64_t t = t0; t < full; ++t)
            for (int c = 0; c < M; ++c) out[M * t + c] = o[c * ch + t] + bias;
          for (int64_t t = std::max(t0, full); t < t1; ++t)
            for (int64_t c = 0; c < g.ow - M * t; ++c) out[M * t + c] = o[c * ch + t] + bias;
        }
      l += t1 - t0;
    }
  }
}

// Target size of one block's transformed input (per thread).
// The loops below give every thread about this many pieces to take in turn (ThreadPool::parallel_for_dynamic): each
// piece writes only its own outputs and uses per-thread scratch only for temporaries, so the bytes are the same
// whichever thread takes it, and a vCPU the hypervisor holds back no longer holds up the call. On the shared EPYC
// VM, in the minutes it ran slow, the default UNet's layers at 4x5x4 took 2.2x their time in the fast minutes with
// one fixed range per thread (PyTorch's forward 1.05x).
constexpr int kPiecesPerThread = 4;
// 1.5 MiB of a Sapphire Rapids core's 2 MiB L2, where it was tuned. The EPYC's Zen 4 cores have 1 MiB, but 768 KiB
// there gave the same times (default UNet fp32 113.1-115.1 against 114.5-115.9 ms; the generator's UNets within
// noise): AVX-512's 48-lane tiles and kMinBlockLanes floor most blocks' size anyway.
constexpr int64_t kBlockBytes = int64_t(3) << 19;
// Each block streams all of U past its lanes, so a block narrower than this spends more time reading U from L3 than
// V's staying in L2 saves. wasm's 8-lane micro-tiles made blocks of 8 lanes from 128 input channels at F(4,3) (a 14 MB
// U read 20 times per call at 128 -> 128, 16x20x16, batch 2); at 32 lanes that layer took 23.5 against 31.7 ms and the
// default UNet's forward 266 against 291 ms (EPYC, wasm-simd-threads, two threads). AVX-512's 48-lane tiles are wider.
constexpr int64_t kMinBlockLanes = 32;
// Largest U the blocked schedule streams once per block (it has to stay in L3 between blocks).
constexpr int64_t kFusedUBytes = int64_t(16) << 20;
// Phased groups: transformed input + products of one group.
constexpr int64_t kGroupBytesCap = int64_t(128) << 20;
// Phased calls make U (when the layer does not keep it) a slice of output channels of at most this size at a time.
constexpr int64_t kUSliceBytes = int64_t(128) << 20;
// A layer keeps its U across calls below this many outputs (tiles * m^3; 2048 tiles of F(2,3)), where the weight
// transform costs more than ~2% of the products (it reads each weight once, the products alpha^3 * tiles / 27
// times), and up to this size. Counted in outputs, not tiles, so F(4,3) keeps its 3.4x larger U for the volumes
// F(2,3) did: by its own tiles it would also keep it in the SPADE decoder's twelve 128 -> 128 layers at 24x32x24
// (288 tiles), +163 MiB peak RSS for a part of a percent of its time.
constexpr int64_t kKeepUOutputs = 2048 * 8;
constexpr int64_t kKeepUBytes = int64_t(16) << 20;
// wasm keeps none: its heap never shrinks, and with F(4,3) down to 8x10x8 (no fused multiply-add there) the default
// UNet's kept U came to 230 MB, its forward's peak RSS 540 MiB against PyTorch's 399. Keeping U up to 4 MiB (the
// 4x5x4 and 64-channel layers) once saved about 5% of the forward; since the spill-free micro-tile and blocks of at
// least kMinBlockLanes it saves nothing: keeping none against up to 4 MiB, default UNet, EPYC, wasm threads, two
// threads, three alternations, 268-273 against 269-273 ms (calm minutes) and 330 against 323 (slow), peak RSS
// 331-336 against 394-401 MiB.
constexpr int64_t kKeepUBytesWasm = 0;

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

template <int M>
Status conv3d_winograd_m(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
                         Tensor& y) {
  constexpr int64_t kPoints = int64_t(Tile<M>::kAlpha) * Tile<M>::kAlpha * Tile<M>::kAlpha;
  const KernelTable& k = ctx.kernels();
  const WinoGeometry g = wino_geometry(x, weight, p, M);
  const int co_block = k.conv_co_block;
  const int64_t tb = k.conv_tile;
  const int64_t co_blocks = (g.cout + co_block - 1) / co_block;
  const int threads = ctx.threads();
  const int64_t f32 = sizeof(float);

  // Tile rows per block: the block's V (alpha^3 points x cin x lanes) stays within about kBlockBytes, so it is still
  // in L2 when the products of every output-channel block read it, but has at least kMinBlockLanes lanes; among the
  // row counts that fit, the one whose lanes fill the micro-tiles best (padding lanes cost products).
  const int64_t total_rows = g.slices * g.ty;
  const int64_t max_lanes =
      std::max(round_up(kMinBlockLanes, tb), kBlockBytes / (kPoints * g.cin * f32) / tb * tb);
  const int64_t max_rows = std::min(total_rows, std::max<int64_t>(1, max_lanes / g.tx));
  int64_t block_rows = 1;
  double best = 0;
  for (int64_t rows = 1; rows <= max_rows; ++rows) {
    const int64_t blocks_n = (total_rows + rows - 1) / rows;
    const double fill = static_cast<double>(total_rows * g.tx) / static_cast<double>(blocks_n * round_up(rows * g.tx, tb));
    if (fill >= best - 1e-9) { best = fill; block_rows = rows; }
  }
  // The blocks above suit a U that stays in cache between blocks (each block reads all of it) and enough blocks to
  // share out. Otherwise (small volumes such as 8x10x8, or wide layers: 512 x 512 channels make a 64 MiB U at
  // F(2,3)) the volume goes in groups of tile rows done in phases: every input of the group transformed into one V,
  // the products point by point (V_p and U_p stay in cache across output-channel blocks) into one M, then every
  // output transformed; a group has about cin * cout / (cin + cout) lanes, so streaming U once per group costs no
  // more than the group's own V and M, and V + M stay within kGroupBytesCap. A U above kUSliceBytes (F(4,3) at
  // 768 x 768 channels: 510 MB) is made and used a slice of output channels at a time, so scratch stays within
  // kUSliceBytes + kGroupBytesCap.
  const int64_t u_bytes = kPoints * g.cin * g.cout * f32;
  // bf16 precision: the products at each point run on the bf16 tile, from U and V rounded to bf16 with input
  // channels in pairs (kernels/bf16.h); the transforms and M stay fp32. F(2,3) only (conv3d() refuses F(4,3) in
  // bf16 and Auto does not choose it there; see the header comment). A block's lanes are padded to whole vectors,
  // not whole micro-tiles: its last micro-tile runs on the narrower kernel (conv_tile_part_fn). 160 tiles (the
  // default UNet's 16x20x16 layers at F(4,3) and 8x10x8 at F(2,3), batch 2) made four tiles of 48 lanes, a sixth of
  // them padding; 24 (4x5x4) made one, half of it padding.
  const int64_t step = k.conv_tile_step;
  const Bf16Kernels* bf = M == 2 ? ctx.bf16() : nullptr;
  if (bf && (bf->conv_co_block != co_block || bf->conv_tile != tb || bf->pair_multiple != 1 ||
             bf->conv_tile_step != step || !bf->conv_tile_part_fn))
    bf = nullptr;
  // Too few blocks to share out, and U small enough to be read by every thread: each thread takes its own share of
  // the volume, a block of the lanes (ceil(rows / threads) tile rows) or, where U outweighs V (the whole volume's
  // transformed input: the default UNet's 4x5x4 layers), all the lanes and its own share of the output channels,
  // transforming the input itself. Either way a thread reads only what it wrote, plus x and U. Groups in phases
  // (below) hand V and M from thread to thread between phases, and where the two vCPUs lie on different dies (the
  // EPYC VM's slow minutes: a cache line's round trip between the threads 330 ns against 55) that traffic took
  // the default UNet's bf16 forward from ~105 to ~138 ms.
  const bool few_blocks = (total_rows + block_rows - 1) / block_rows < 4 * threads;
  int64_t co_parts = 1;  // output-channel shares of each block (one per thread) 
  bool phased = u_bytes > kFusedUBytes || (few_blocks && threads == 1);
  if (!phased && few_blocks) {
    const int64_t u_read = kPoints * g.cin * g.cout * (bf ? 2 : f32);
    const int64_t v_all = kPoints * g.cin * round_up(total_rows * g.tx, step) * (bf ? f32 + 2 : f32);
    if (v_all < u_read) {
      block_rows = total_rows;
      co_parts = std::min<int64_t>(threads, co_blocks);
    } else {
      block_rows = (total_rows + threads - 1) / threads;
    }
  }
  // The layer keeps its U (PackedConvWeights) where it is small and its transform a large share of the call.
  const int64_t keep_u_bytes = ctx.kernels().isa == Isa::WasmSimd128 ? kKeepUBytesWasm : kKeepUBytes;
  const bool keep_u = p.packed && g.slices * g.plane_tiles * M * M * M < kKeepUOutputs && u_bytes <= keep_u_bytes;
  const int64_t slice_blocks =
      phased && !keep_u ? std::min(co_blocks, std::max<int64_t>(1, kUSliceBytes / (kPoints * g.cin * co_block * f32)))
                        : co_blocks;
  const int64_t slice_cout = std::min(g.cout, slice_blocks * co_block);
  if (phased) {
    const int64_t want_lanes = std::max<int64_t>(4 * tb, g.cin * slice_cout / (g.cin + slice_cout));
    const int64_t cap_lanes = std::max<int64_t>(tb, kGroupBytesCap / (kPoints * (g.cin + slice_cout) * f32) / tb * tb);
    block_rows = std::min(total_rows, std::max<int64_t>(1, std::min(want_lanes, cap_lanes) / g.tx));
  }
  const int64_t blocks = (total_rows + block_rows - 1) / block_rows;
  const int64_t lanes = round_up(block_rows * g.tx, step);
  // A block's products go one output-channel block at a time (each reads all of V, from L2) where V fits in
  // kBlockBytes, else one point at a time (V_p read once for every output channel, M holding all of them): V of
  // one micro-tile of lanes outgrows L2 from 129 input channels at F(2,3) and from 38 at F(4,3), and re-read per
  // output-channel block from L3 it made F(2,3) 192 -> 64 at 16x20x16 take 88 ms against 60 (one thread).
  const bool point_major = !phased && kPoints * g.cin * lanes * f32 > kBlockBytes;

  const int64_t pairs = (g.cin + 1) / 2;
  const InputScratch isc(g, M, block_rows);
  // V and M are stored a channel at a time, [channel][point][lane]: the input transform of one channel then writes
  // one compact run of memory, and the output transform reads one. Stored point by point ([point][channel][lane]),
  // each channel's alpha^3 rows lay a whole channel-row apart, and with V beyond L2 its transform ran 2.5x slower
  // (F(4,3), 64 channels at 16x20x16, batch 2, one group of 10 MB: 10.5 against 4.2 ms, one thread). The products
  // read V_p one channel-stride apart either way. Channel strides (and U's point stride) are padded by one cache line: at
  // 2^k bytes (F(2,3) at 48 lanes: 12 KiB) the rows the micro-kernel reads together would fall into one L1 set.
  const int64_t u_point = round_up(slice_blocks * co_block * g.cin, 16) + 16;
  const int64_t v_channel = round_up(kPoints * lanes, 16) + 16;
  const int64_t u_floats = kPoints * u_point;
  const int64_t u2_floats = bf ? round_up(kPoints * slice_blocks * co_block * pairs, 16) : 0;  // 2 halves = 1 float
  const int64_t v_floats = g.cin * v_channel;
  const int64_t v_block_floats = v_floats + (bf ? round_up(kPoints * pairs * lanes, 16) : 0);  // V, its bf16 pairs
  // M: a group's (the slice's output channels) when phased, else per thread one block's, all output channels or
  // one block of them.
  const int64_t m_channel = v_channel;
  const int64_t part_blocks = (co_blocks + co_parts - 1) / co_parts;  // output-channel blocks of one share
  const int64_t m_floats = (phased ? slice_cout : point_major ? part_blocks * co_block : co_block) * m_channel;
  const int64_t work_floats =
      round_up(std::max<int64_t>({isc.floats(), OutputStep<M>::kRows * OutputStep<M>::kChunk, kPoints * kWeightRun}), 16);
  const int64_t thread_floats = (phased ? 0 : v_block_floats + m_floats) + work_floats;
  const int64_t shared_floats = phased ? v_block_floats + m_floats : 0;
  // U lives in the layer's cache (PackedConvWeights) where it is kept, else in scratch before V and M. The cache is
  // held for the whole call (hold_packed), so another context cannot remake it underneath this one. It holds one
  // tile size's U: a layer whose calls alternate between F(2,3) and F(4,3) (batch sizes on either side of
  // winograd_tile's limits) remakes it on each switch.
  // The bf16 products read only U's bf16 pairs, so a bf16 layer keeps those alone and makes the fp32 U they are
  // packed from in scratch (the default UNet's bf16 F(2,3) layers held 54 MB of fp32 U that nothing read).
  const int64_t kept_floats = bf ? u2_floats : u_floats;
  const int64_t u_scratch_floats = keep_u ? u_floats + u2_floats - kept_floats : u_floats + u2_floats;
  float* scratch = static_cast<float*>(ctx.scratch().reserve(
      sizeof(float) * (u_scratch_floats + shared_floats + thread_floats * threads)));
  float* u = scratch;
  uint16_t* u2 = reinterpret_cast<uint16_t*>(u + u_floats);
  float* shared = scratch + u_scratch_floats;
  float* per_thread = shared + shared_floats;
  // U, or its bf16 pairs, in the layer's cache.
  auto point_at_cache = [&](float* cache) {
    if (bf) u2 = reinterpret_cast<uint16_t*>(cache);
    else u = cache;
  };

  // U of output-channel blocks [s0, s1) (a slice, or all of them), block cb at (cb - s0).
  auto make_u = [&](int64_t s0, int64_t s1) {
    ctx.pool().parallel_for(s1 - s0, [&](int64_t b0, int64_t b1, int t) {
      transform_weights<M>(g, weight.f32(), co_block, s0 + b0, s0 + b1, u + b0 * g.cin * co_block, u_point,
                           per_thread + t * thread_floats);
    });
    if (bf)
      ctx.pool().parallel_for(kPoints * (s1 - s0), [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t pt = i / (s1 - s0), cb = i % (s1 - s0);
          pack_bf16_weight_pairs(u + pt * u_point, g.cin, 1, co_block, u2 + 2 * pt * slice_blocks * pairs * co_block, cb,
                                 cb + 1);
        }
      });
  };
  const bool sliced = slice_blocks < co_blocks;
  std::shared_lock<std::shared_mutex> cache_lock;
  if (keep_u) {
    PackedConvWeights& pk = *p.packed;
    cache_lock = hold_packed(
        pk,
        [&] {
          return pk.winograd_kernels == &k && pk.winograd_bf16 == bf && pk.winograd_tile == M &&
                 static_cast<int64_t>(pk.winograd_u.size()) == kept_floats;
        },
        [&] {
          pk.winograd_kernels = nullptr;
          pk.winograd_u.assign(static_cast<size_t>(kept_floats), 0.0f);
          point_at_cache(pk.winograd_u.data());
          make_u(0, co_blocks);
          pk.winograd_kernels = &k;
          pk.winograd_bf16 = bf;
          pk.winograd_tile = M;
        });
    point_at_cache(pk.winograd_u.data());
  } else if (!sliced) {
    make_u(0, co_blocks);
  }

  const int64_t total_lanes = total_rows * g.tx;
  const float* bias_data = bias ? bias->f32() : nullptr;
  const int32_t tap0 = 0;
  auto block_used = [&](int64_t blk) { return std::min(total_lanes, (blk + 1) * block_rows * g.tx) - blk * block_rows * g.tx; };
  // The lanes of block blk the products compute (its tiles padded to whole vectors), and its micro-tiles.
  auto block_lanes = [&](int64_t blk) { return round_up(block_used(blk), step); };
  auto block_tiles = [&](int64_t blk) { return (block_lanes(blk) + tb - 1) / tb; };
  // One block's V for channels [c0, c1), zeros in the pad lanes.
  auto transform_block = [&](int64_t blk, int64_t c0, int64_t c1, float* v, float* work) {
    const int64_t r0 = blk * block_rows, r1 = std::min(total_rows, r0 + block_rows), used = block_used(blk);
    const int64_t padded = block_lanes(blk);
    for (int64_t ci = c0; ci < c1; ++ci) {
      transform_input<M>(g, isc, x.f32(), ci, r0, r1, v + ci * v_channel, lanes, work);
      if (used < padded)  // pad lanes: finite zeros, their products are dropped
        for (int64_t pt = 0; pt < kPoints; ++pt)
          std::memset(v + ci * v_channel + pt * lanes + used, 0, sizeof(float) * (padded - used));
    }
  };
  auto pack_points = [&](float* v, int64_t blk, int64_t p0, int64_t p1) {
    uint16_t* v2 = reinterpret_cast<uint16_t*>(v + v_floats);
    for (int64_t pt = p0; pt < p1; ++pt)
      pack_bf16_pairs(v + pt * lanes, g.cin, v_channel, lanes, block_lanes(blk), v2 + 2 * pt * pairs * lanes, 0, pairs);
  };
  // acc[c * acc_stride + i] (c < co_block, i < width) = the products of output-channel block cb (s0: the first
  // block of U) at point pt for micro-tile `tile` of v, width = tb lanes or (a block's last tile) fewer. The kernels
  // store them straight into M's channel rows (a dense tile copied there cost 4% of the default UNet's forward);
  // only a last block that M has no rows for past cout goes through the dense tile (to_m).
  auto products = [&](const float* v, int64_t pt, int64_t cb, int64_t s0, int64_t tile, int64_t width, float* acc,
                      int64_t acc_stride) {
    const int vectors = static_cast<int>(width / step);
    if (bf) {
      const uint16_t* vt = reinterpret_cast<const uint16_t*>(v + v_floats) + 2 * (pt * pairs * lanes + tile * tb);
      const uint16_t* ut = u2 + 2 * (pt * slice_blocks + cb - s0) * pairs * co_block;
      if (width == tb)
        bf->conv_tile_fn(vt, ut, &tap0, 1, static_cast<int>(pairs), lanes, acc, acc_stride);
      else
        bf->conv_tile_part_fn(vt, ut, &tap0, 1, static_cast<int>(pairs), lanes, acc, acc_stride, vectors);
    } else {
      const float* vt = v + pt * lanes + tile * tb;
      const float* ut = u + pt * u_point + (cb - s0) * g.cin * co_block;
      if (width == tb)
        k.conv_tile_fn(vt, ut, &tap0, 1, static_cast<int>(g.cin), v_channel, acc, acc_stride);
      else
        k.conv_tile_part_fn(vt, ut, &tap0, 1, static_cast<int>(g.cin), v_channel, acc, acc_stride, vectors);
    }
  };
  // The products of block cb at (pt, tile) of block blk into rows of m (row c of the block at m_block + c *
  // m_channel), which has rows only up to cout.
  auto to_m = [&](const float* v, int64_t blk, int64_t pt, int64_t cb, int64_t s0, int64_t tile, float* m_block,
                  float* acc) {
    float* dst = m_block + pt * lanes + tile * tb;
    const int64_t width = std::min(tb, block_lanes(blk) - tile * tb);
    if ((cb + 1) * co_block <= g.cout) {
      products(v, pt, cb, s0, tile, width, dst, m_channel);
      return;
    }
    products(v, pt, cb, s0, tile, width, acc, tb);
    for (int c = 0; c < co_block && cb * co_block + c < g.cout; ++c)
      std::memcpy(dst + c * m_channel, acc + c * tb, sizeof(float) * width);
  };
  // The outputs of channels [co0, co1) of block blk from m (channel co at m + (co - co0) * m_channel).
  auto outputs = [&](const float* m, int64_t blk, int64_t co0, int64_t co1, float* work) {
    for (int64_t co = co0; co < std::min(co1, g.cout); ++co)
      transform_output<M>(g, m + (co - co0) * m_channel, lanes, co, blk * block_rows * g.tx, block_used(blk),
                          bias_data ? bias_data[co] : 0.0f, y.f32(), work);
  };

  if (phased) {
    float* v = shared;
    float* m = shared + v_block_floats;
    // Output-channel blocks whose U (one point) fill about 256 KiB stay in L2 while every micro-tile passes over them.
    const int64_t chunk = std::min(slice_blocks, std::max<int64_t>(1, (int64_t(256) << 10) / (g.cin * co_block * 4)));
    auto transform_group = [&](int64_t blk) {
      ctx.pool().parallel_for_dynamic(g.cin, kPiecesPerThread, [&](int64_t c0, int64_t c1, int t) {
        transform_block(blk, c0, c1, v, per_thread + t * thread_floats);
      });
      if (bf) ctx.pool().parallel_for(kPoints, [&](int64_t p0, int64_t p1, int) { pack_points(v, blk, p0, p1); });
    };
    // The products and outputs of group blk for output-channel blocks [s0, s1), U holding that slice.
    auto slice_of_group = [&](int64_t blk, int64_t s0, int64_t s1) {
      const int64_t group_tiles = block_tiles(blk), chunks = (s1 - s0 + chunk - 1) / chunk;
      ctx.pool().parallel_for_dynamic(kPoints * chunks * group_tiles * chunk, kPiecesPerThread, [&](int64_t begin, int64_t end, int) {
        alignas(64) float acc[16 * 64];
        for (int64_t item = begin; item < end; ++item) {
          const int64_t cb = s0 + ((item / (group_tiles * chunk)) % chunks) * chunk + item % chunk;
          if (cb >= s1) continue;
          const int64_t pt = item / (chunks * group_tiles * chunk), tile = (item / chunk) % group_tiles;
          to_m(v, blk, pt, cb, s0, tile, m + (cb - s0) * co_block * m_channel, acc);
        }
      });
      ctx.pool().parallel_for_dynamic(std::min(g.cout, s1 * co_block) - s0 * co_block, kPiecesPerThread, [&](int64_t c0, int64_t c1, int t) {
        outputs(m + c0 * m_channel, blk, s0 * co_block + c0, s0 * co_block + c1, per_thread + t * thread_floats);
      });
    };
    // With U in slices, either each slice transforms the input of every group again or each group makes U again:
    // whichever repeats less (one group, as wide layers at 12x16x12 and below have, repeats nothing).
    const int64_t slices = (co_blocks + slice_blocks - 1) / slice_blocks;
    if (!sliced || (blocks - 1) * g.cout <= (slices - 1) * total_lanes) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        transform_group(blk);
        for (int64_t s0 = 0; s0 < co_blocks; s0 += slice_blocks) {
          if (sliced) make_u(s0, std::min(co_blocks, s0 + slice_blocks));
          slice_of_group(blk, s0, std::min(co_blocks, s0 + slice_blocks));
        }
      }
    } else {
      for (int64_t s0 = 0; s0 < co_blocks; s0 += slice_blocks) {
        make_u(s0, std::min(co_blocks, s0 + slice_blocks));
        for (int64_t blk = 0; blk < blocks; ++blk) {
          transform_group(blk);
          slice_of_group(blk, s0, std::min(co_blocks, s0 + slice_blocks));
        }
      }
    }
    return Status::ok();
  }

  // Piece i: block i / co_parts, its output-channel blocks of share i % co_parts; all of a piece on one thread.
  auto piece = [&](int64_t i, int t) {
    const int64_t blk = i / co_parts, cb0 = (i % co_parts) * part_blocks, cb1 = std::min(co_blocks, cb0 + part_blocks);
    float* v = per_thread + t * thread_floats;
    float* m = v + v_block_floats;
    float* work = m + m_floats;
    transform_block(blk, 0, g.cin, v, work);
    if (bf) pack_points(v, blk, 0, kPoints);
    const int64_t tiles = block_tiles(blk), padded = block_lanes(blk);
    if (point_major) {
      for (int64_t pt = 0; pt < kPoints; ++pt)
        for (int64_t tile = 0; tile < tiles; ++tile)
          for (int64_t cb = cb0; cb < cb1; ++cb)
            products(v, pt, cb, 0, tile, std::min(tb, padded - tile * tb),
                     m + (cb - cb0) * co_block * m_channel + pt * lanes + tile * tb, m_channel);
      outputs(m, blk, cb0 * co_block, cb1 * co_block, work);
      return;
    }
    for (int64_t cb = cb0; cb < cb1; ++cb) {
      for (int64_t pt = 0; pt < kPoints; ++pt)
        for (int64_t tile = 0; tile < tiles; ++tile)
          products(v, pt, cb, 0, tile, std::min(tb, padded - tile * tb), m + pt * lanes + tile * tb, m_channel);
      outputs(m, blk, cb * co_block, (cb + 1) * co_block, work);
    }
  };
  // Many blocks go out in dynamic pieces; a thread's own share (few blocks) stays with that thread.
  if (few_blocks)
    ctx.pool().parallel_for(blocks * co_parts, [&](int64_t i0, int64_t i1, int t) {
      for (int64_t i = i0; i < i1; ++i) piece(i, t);
    });
  else
    ctx.pool().parallel_for_dynamic(blocks, kPiecesPerThread, [&](int64_t b0, int64_t b1, int t) {
      for (int64_t blk = b0; blk < b1; ++blk) piece(blk, t);
    });
  return Status::ok();
}

}  // namespace

bool winograd_applies(const Tensor& weight, const Conv3dParams& p) {
  return weight.shape[2] == 3 && weight.shape[3] == 3 && weight.shape[4] == 3 && p.stride[0] == 1 &&
         p.stride[1] == 1 && p.stride[2] == 1;
}

// Measured on the 2-core EPYC (bench/conv3d-algorithms.bench.ts): 2.5-4x faster from 128 channels up,
// about even at 64, slower at 32 and below, where the transforms cost as much as the products. (That was F(2,3)
// before the blocked schedule; layers narrower than 64 channels now take F(4,3) down to one channel: winograd_tile.)
// Below ~64 output tiles (4x5x4 with batch 2: 24) the per-call weight transform outweighs the products it saves
// (bench/conv3d-algorithms.bench.ts: 128 -> 128 @4x5x4 direct 3.5 ms, Winograd 4.4 ms).
bool winograd_pays(int64_t cin, int64_t cout, int64_t tiles, int64_t min_tiles) {
  return cin >= 64 && cout >= 64 && tiles >= min_tiles;
}

// The fewest tiles from which Winograd beats the direct convolution. 64 where every call transforms the weights, as
// runOp on two threads measured it (above). Half that where a network layer keeps its U (kKeepUOutputs, kKeepUBytes)
// or a single thread takes all the tiles. The shipped generator's networks, `brain-ldm run-network --repeat 15`, EPYC,
// two threads, two alternations: its image UNet (batch 1, eleven narrow layers at 12x16x12, 36 tiles of 4^3, and
// 64-channel ones at 6x8x6, 36 tiles of 2^3) 28.6-28.9 -> 20.8-20.9 ms; its mask UNet (batch 2 as two one-thread
// shares) 56.8-57.2 -> 43.2-44.2 ms; 16 tiles gave the same. On one thread with U made every call (runOp, batch 1,
// `bench/conv3d-algorithms.bench.ts --threads 1 --batch 1 --algs 1,3,2,4`) Winograd still won 1.6-2.6x there:
// 33 -> 16 @12x16x12 direct 0.9, F(4,3) 0.5 ms; 96 -> 32 @12x16x12 4.5 -> 1.8; 64 -> 64 @6x8x6 1.3 -> F(2,3) 0.5.
int64_t winograd_min_tiles(bool keeps_u, int threads) { return keeps_u || threads <= 1 ? 32 : 64; }

// F(4,3) where F(2,3) pays and
//  - cin * cout / (cin + cout) >= 40, so the products outweigh the transforms (which cost per channel), or the
//    volume has at least 128 tiles. (256 until the default UNet's seven 64 -> 64 layers at 16x20x16, 160 tiles
//    with batch 2, were timed inside the network on the 2-core AMD EPYC (Zen 4) VM: BRAIN_LDM_PROFILE, two
//    alternations, 38.7 and 36.0 ms with F(2,3) against 30.0 and 28.6 ms with F(4,3), every other layer the same;
//    the whole forward 161-183 -> 152-157 ms over three alternations of 7, peak RSS 358 -> 377 MiB. The Sapphire
//    Rapids loop below had it the other way, 6.2 against 7.5 ms a layer.)
//  - its point products are at most 60% of F(2,3)'s (output sizes just past a multiple of 4 waste up to 3/4 of an
//    edge tile per axis);
//  - and there are at least 64 4x4x4 tiles: fewer fill too little of the micro-kernel's lanes (48 on AVX-512) to
//    pay for a weight transform 3.4x F(2,3)'s. At 8x10x8 (24 tiles with batch 2) a network layer that keeps U
//    runs F(4,3) as fast as F(2,3) or up to 30% faster (one thread), but keeping a 14 MB U in each of the default
//    UNet's seven 128 -> 128 layers there raised the forward's peak RSS from 358 to 430 MiB, above PyTorch's.
// Measured on the 2-core Intel Sapphire Rapids VM (AVX-512), idle, fp32, batch 2, two threads: a C++ loop calling
// conv3d() with a layer's PackedConvWeights as a network does (U kept where kKeepUOutputs and kKeepUBytes allow),
// alternating F(2,3) and F(4,3), median of 15 (left column), of 5 (right) and of 2 (its last three), F(2,3) ->
// F(4,3) ms:
//   64 -> 64 @16x20x16 (160 tiles)      6.2 -> 7.5     F(2,3)     128 -> 128 @16x20x16     47.2 -> 22.8   F(4,3)
//   96 -> 96 @16x20x16                 19.5 -> 14.4    F(4,3)     192 -> 64 @16x20x16      28.5 -> 20.4   F(4,3)
//   128 -> 64 @16x20x16                28.3 -> 15.4    F(4,3)     64 -> 64 @32x40x32       76.0 -> 49.2   F(4,3)
//   64 -> 64 @12x16x12 (72 tiles)       5.5 -> 4.6     F(2,3)*    256 -> 128 @8x10x8       11.2 -> 17.4   F(2,3)
//   128 -> 128 @12x16x12               22.9 -> 12.8    F(4,3)     256 -> 256 @24x32x24      489 -> 219    F(4,3)
//   128 -> 128 @8x10x8 (24 tiles)       6.5 -> 6.4     F(2,3)     512 -> 512 @12x16x12      260 -> 166    F(4,3)
//   64 -> 128 @8x10x8                   3.2 -> 3.1     F(2,3)     768 -> 768 @6x8x6 (16)    106 -> 244    F(2,3)
// (F(4,3)'s U is made every call from 256 input channels up: above kKeepUBytes.) *A miss: F(2,3) runs in phases there (too
// few blocks), which the rule does not model; one-thread runs had it even (10.1 -> 9.2, 13.2 -> 9.9, 6.7 -> 7.9).
// Those one-thread runs of the same loop, taken while another job held 1.3 of the cores, and runOp through
// `node --import=tsx bench/conv3d-algorithms.bench.ts --algs 2,4` (U made every call) ranked the other shapes alike.
//
// Without a fused multiply-add (wasm simd128) F(4,3) wins wherever it fills 16 tiles and F(2,3) from 16 tiles: runOp
// alternating F(2,3) and F(4,3) (U made every call) on the EPYC, wasm-simd-threads, two threads, batch 2,
// `node --import=tsx bench/conv3d-algorithms.bench.ts --backend wasm-simd-threads --algs 3,2,4`, median of 5-7 ms:
//   64 -> 64 @16x20x16    27.7 -> 13.1        128 -> 128 @8x10x8 (24 tiles)   10.5 -> 6.5
//   128 -> 64 @16x20x16   38.9 -> 22.4        256 -> 128 @8x10x8              18.9 -> 12.6
//   128 -> 128 @16x20x16  69.9 -> 39.4        128 -> 128 @4x5x4 (4 tiles)      gathered 4.2, F(2,3) 2.1, F(4,3) 4.2
//   192 -> 64 @16x20x16   61.0 -> 36.6        256 -> 128 @4x5x4                gathered 7.6, F(2,3) 3.7, F(4,3) 8.0
// and narrow layers too (16 to 63 channels a side), direct -> F(4,3) (--algs 0,4):
//   32 -> 32 @24x32x24    43.9 -> 9.5         48 -> 48 @48x64x48 (batch 1)    377.8 -> 79.9
//   16 -> 16 @24x32x24    14.8 -> 7.9         33 -> 16 @12x16x12 (batch 1, 36 tiles)  3.2 -> 1.0
//
// A bf16 network layer keeps F(2,3)'s U where it is at most kKeepUBytes, and then F(2,3) pays from 16 tiles (64 and
// more channels a side): with the weight transform out of the call its products are 27/8 times fewer than the
// direct convolution's, which at 4x5x4 also wastes 58% of its lanes on the flat layout's margins. The default UNet's
// fourteen layers at 4x5x4 (batch 2, 24 tiles), inside the network (BRAIN_LDM_PROFILE, the EPYC, two threads, three
// alternations), 11 x 128 -> 128 and 3 x 256 -> 128: direct 11.5-12.2 + 5.9-6.1 ms -> F(2,3) 7.2-7.8 + 3.7-3.8 ms;
// peak RSS +22 MiB (U's bf16 pairs are 64/27 the packed weights). fp32 gains as much over the gathered convolution
// (11.9-12.9 + 6.3-6.6 -> 7.5 + 4.0 ms), but its kept fp32 U raised the forward's peak RSS from 380 to 420 MiB, past
// PyTorch's 404, for 3% of the forward, so fp32 keeps the gathered convolution there.
int winograd_tile(int64_t cin, int64_t cout, int64_t batch, const int64_t out[3], bool bf16, bool no_fma,
                  bool keeps_weights, int threads, bool bf16_context) {
  int64_t tiles2 = batch, tiles4 = batch;
  for (int i = 0; i < 3; ++i) {
    tiles2 *= (out[i] + 1) / 2;
    tiles4 *= (out[i] + 3) / 4;
  }
  if (no_fma && !bf16) {
    if (tiles2 < 16) return 0;
    const bool little_waste = 216 * tiles4 * 10 <= 64 * tiles2 * 6;
    if (tiles4 >= 16 && little_waste) return 4;
    return cin >= 64 && cout >= 64 ? 2 : 0;
  }
  // Narrow layers (fewer than 64 channels on a side, as in the shipped generator's networks) take F(4,3) where it has
  // 64 tiles (32 where the layer keeps U or on one thread: winograd_min_tiles), else no Winograd. runOp, U made every
  // call, the EPYC, fp32, two threads, median of 5-9 ms, direct (auto before) -> F(2,3) -> F(4,3),
  // `bench/conv3d-algorithms.bench.ts --algs 0,2,4 --shapes ...`:
  //   batch 2: 16 -> 16 @24x32x24  3.0 -> 2.2 -> 1.7    32 -> 32 @24x32x24   10.8 -> 6.4 -> 3.5
  //            48 -> 16 @24x32x24  8.4 -> 5.5 -> 3.2    16 -> 32 @12x16x12 (72 tiles)  1.0 -> 1.0 -> 0.6
  //            32 -> 32 @12x16x12  1.8 -> 1.3 -> 0.8    96 -> 32 @12x16x12    4.7 -> 2.1 -> 2.0
  //            48 -> 48 @6x8x6 (16 tiles) 1.7 -> 1.0 -> 1.4, 16 -> 48 @6x8x6  0.7 -> 0.6 -> 0.8 (no Winograd)
  //   batch 1: 48 -> 48 @48x64x48  89.2 -> 43.4 -> 25.4  33 -> 16 @48x64x48  22.5 -> 16.6 -> 10.1
  //            16 -> 48 @48x64x48  31.3 -> 28.3 -> 13.2  33 -> 16 @12x16x12 (36 tiles)  0.6 -> 1.4 -> 0.9 (none)
  // All within 5.4e-6 of the direct convolution.
  // Down to one channel a side (the first and last convolutions, latent and image channels), direct -> F(4,3), same
  // bench, ms: two threads, batch 2: 3 -> 64 @16x20x16 0.8 -> 0.5, 64 -> 3 1.9 -> 1.2, 4 -> 16 @24x32x24 0.9 -> 0.6,
  // 16 -> 4 1.5 -> 0.9, 8 -> 1 @16^3 0.2 -> 0.1, 1 -> 8 even; batch 1: 32 -> 1 @48x64x48 19.4 -> 6.7, 4 -> 48
  // @24x32x24 1.2 -> 0.7, 16 -> 6 @12x16x12 0.7 -> 0.2; one thread, batch 1: 16 -> 4 @24x32x24 1.6 -> 1.1, 64 -> 3
  // @16x20x16 1.8 -> 1.0. wasm alike (16 -> 4 @24x32x24 4.6 -> 1.4). Not in a bf16 context, whose direct convolution
  // beat or matched the fp32 F(4,3) there (4 -> 16 @24x32x24 0.6 against 1.4, 64 -> 3 1.0 against 1.1).
  const bool narrow = (cin < 64 || cout < 64) && (!bf16_context || (cin >= 16 && cout >= 16));
  // Whether a network layer keeps F(2,3)'s and F(4,3)'s U (conv3d_winograd_m's keep_u).
  const bool keeps2 = keeps_weights && tiles2 * 8 < kKeepUOutputs && 64 * cin * cout * 4 <= kKeepUBytes;
  const bool keeps4 = keeps_weights && tiles4 * 64 < kKeepUOutputs && 216 * cin * cout * 4 <= kKeepUBytes;
  // In a bf16 context the alternative is the bf16 direct convolution, which beats fp32 F(4,3) from a kept U on two
  // threads (the shipped image UNet, batch 1: 16.4-16.6 ms, against 17.3-25.0 with F(4,3) from 32 tiles) but not on
  // one: the mask UNet's one-thread shares ran its three narrow layers at 12x16x12 in 5.6 ms bf16 direct against
  // 3.4 ms F(4,3) (BRAIN_LDM_PROFILE), the forward 39.4-39.6 ms against 41.4-41.9 in two of three alternations.
  const int64_t narrow_min_tiles = winograd_min_tiles(keeps4 && !bf16_context, threads);
  if (narrow && !bf16) return tiles4 >= narrow_min_tiles && 216 * tiles4 * 10 <= 64 * tiles2 * 6 ? 4 : 0;
  if (!winograd_pays(cin, cout, tiles2, winograd_min_tiles(keeps2, threads)))
    return bf16 && keeps_weights && cin >= 64 && cout >= 64 && tiles2 >= 8 && 64 * cin * cout * 4 <= kKeepUBytes ? 2 : 0;
  if (bf16) return 2;
  const bool products_lead = cin * cout >= 40 * (cin + cout);
  const bool little_waste = 216 * tiles4 * 10 <= 64 * tiles2 * 6;
  // One thread takes F(4,3) from 32 tiles (and 32 per thread): 64 -> 64 @12x16x12, batch 1 (36 tiles), U made every
  // call, F(2,3) 2.3 against F(4,3) 1.8 ms on one thread, 1.2 against 1.3 on two; the generator's mask UNet (two such
  // layers per one-thread share) 44.3-44.9 -> 42.7-43.2 ms fp32, 40.3-40.7 -> 39.0-39.9 bf16 (three alternations).
  const int64_t min_tiles4 = threads <= 1 ? 32 : 64;
  return (products_lead || tiles4 >= min_tiles4 * std::max(threads, 1)) && little_waste && tiles4 >= min_tiles4 ? 4 : 2;
}

Status conv3d_winograd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv3dParams& p,
                       int tile, Tensor& y) {
  return tile == 4 ? conv3d_winograd_m<4>(ctx, x, weight, bias, p, y) : conv3d_winograd_m<2>(ctx, x, weight, bias, p, y);
}

}  // namespace bl
