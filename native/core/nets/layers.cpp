#include "layers.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace bl {

std::vector<int64_t> shape_of(const Tensor& t) { return std::vector<int64_t>(t.shape, t.shape + t.ndim); }

Tensor reshaped(const Tensor& t, const std::vector<int64_t>& shape) {
  Tensor v = Tensor::borrow(t.data, t.dtype, shape.data(), static_cast<int>(shape.size()));
  v.owner = t.owner;
  return v;
}

Tensor as_ncdhw(const Tensor& t) {
  if (t.ndim == 5) return t;
  int64_t positions = 1;
  for (int i = 2; i < t.ndim; ++i) positions *= t.shape[i];
  return reshaped(t, {t.shape[0], t.shape[1], positions, 1, 1});
}

bool LayerProfile::enabled() {
  static const bool on = [] {
    const char* v = std::getenv("BRAIN_LDM_PROFILE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

void LayerProfile::add(const std::string& label, double seconds, double flops) {
  Entry& e = entries_[label];
  e.seconds += seconds;
  e.flops += flops;
  ++e.calls;
}

void LayerProfile::print(const std::string& title) const {
  std::vector<std::pair<std::string, Entry>> rows(entries_.begin(), entries_.end());
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (auto& r : rows) total += r.second.seconds;
  static std::mutex print_mutex;  // a batch's shares end together on their own threads (Network::run)
  std::lock_guard<std::mutex> lock(print_mutex);
  std::fprintf(stderr, "brain-ldm profile: %s, %.1f ms in layers\n", title.c_str(), total * 1e3);
  for (auto& [label, e] : rows)
    std::fprintf(stderr, "  %8.1f ms %5.1f%% %4d x  %-48s %s\n", e.seconds * 1e3, 100 * e.seconds / total, e.calls, label.c_str(),
                 e.flops > 0 ? (std::to_string(static_cast<int>(e.flops / e.seconds * 1e-9)) + " GFLOP/s").c_str() : "");
}

LayerTimer::LayerTimer(NetRun& r, const char* kind, const Tensor& x, int cout, double flops) : r_(r), flops_(flops) {
  if (!r.profile) return;
  label_ = std::string(kind) + " " + std::to_string(x.shape[1]);
  if (cout) label_ += "->" + std::to_string(cout);
  label_ += " @";
  for (int i = 2; i < x.ndim; ++i) label_ += (i > 2 ? "x" : "") + std::to_string(x.shape[i]);
  start_ = std::chrono::steady_clock::now();
}

LayerTimer::~LayerTimer() {
  if (r_.profile)
    r_.profile->add(label_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), flops_);
}

Status ConvLayer::bind(WeightStore& ws, const std::string& prefix, int in, int out, int kernel, bool with_bias,
                       int stride, int pad_before, int pad_after) {
  cin = in;
  cout = out;
  k = kernel;
  BL_RETURN_IF_ERROR(ws.take(prefix + ".weight", {out, in, kernel, kernel, kernel}, &weight));
  has_bias = with_bias;
  if (with_bias) BL_RETURN_IF_ERROR(ws.take(prefix + ".bias", {out}, &bias));
  params.packed = std::make_shared<PackedConvWeights>();
  int pb = pad_before < 0 ? kernel / 2 : pad_before;
  int pa = pad_after < 0 ? kernel / 2 : pad_after;
  for (int i = 0; i < 3; ++i) {
    params.stride[i] = stride;
    params.pad_before[i] = pb;
    params.pad_after[i] = pa;
  }
  return Status::ok();
}

Status ConvLayer::forward(NetRun& r, const Tensor& x, Tensor* y) const {
  Tensor x5 = as_ncdhw(x);
  int64_t out_shape[5];
  BL_RETURN_IF_ERROR(conv3d_output_shape(x5, weight, params, out_shape));
  double flops = 2.0 * cin * cout * k * k * k * out_shape[0] * out_shape[2] * out_shape[3] * out_shape[4];
  LayerTimer timer(r, k == 1 ? "conv1x1" : params.stride[0] == 2 ? "conv3x3x3/2" : "conv3x3x3", x5, cout, flops);
  Tensor y5 = r.pool.acquire(std::vector<int64_t>(out_shape, out_shape + 5));
  BL_RETURN_IF_ERROR(conv3d(r.ctx, x5, weight, has_bias ? &bias : nullptr, params, y5));
  if (x.ndim == 5) {
    *y = y5;
  } else {
    std::vector<int64_t> s = shape_of(x);
    s[1] = cout;
    *y = reshaped(y5, s);
  }
  return Status::ok();
}

UpsampleSlabs UpsampleSlabs::from_env() {
  UpsampleSlabs s;
  if (const char* v = std::getenv("BRAIN_LDM_UPSAMPLE_SLAB_ABOVE")) s.above = std::strtoll(v, nullptr, 10);
  if (const char* v = std::getenv("BRAIN_LDM_UPSAMPLE_SLAB_BYTES")) s.bytes = std::strtoll(v, nullptr, 10);
  return s;
}

Status ConvLayer::forward_upsampled2x(NetRun& r, const Tensor& x, const UpsampleSlabs& slabs, Tensor* y) const {
  std::vector<int64_t> up = shape_of(x);
  for (int i = 2; i < 5; ++i) up[i] *= 2;
  const int64_t n = up[0], depth = up[2], plane = up[3] * up[4];
  const int64_t up_bytes = n * cin * depth * plane * 4;
  const bool same_size = k == 3 && params.stride[0] == 1 && params.pad_before[0] == 1 && params.pad_after[0] == 1;
  if (up_bytes <= slabs.above || !same_size || depth < 8) {
    Tensor u = r.pool.acquire(up);
    BL_RETURN_IF_ERROR(resize_nearest(r.ctx, x, u));
    return forward(r, u, y);
  }
  // At a decoder's last upsample the upsampled map is the largest of the network (128 channels at 96x128x96:
  // 576 MB) and lives only to be read by this convolution. So the convolution runs a slab of output depth rows at
  // a time, over those rows of the upsampled map and one more on each side (zero padding only at the volume's
  // own ends). Slabs are a multiple of 4 rows but the last, which takes the rest, so Winograd F(4,3)'s tiles
  // fall where they fall over the whole depth and no slab is so thin that it would pick another algorithm: the
  // output is the same bytes as the whole convolution's.
  const double flops = 2.0 * cin * cout * 27 * n * depth * plane;
  Tensor up_shape = Tensor::borrow(nullptr, DType::F32, up.data(), 5);
  LayerTimer timer(r, "conv3x3x3", up_shape, cout, flops);
  const int64_t row_bytes = n * (cin + cout) * plane * 4;
  const int64_t target = std::max<int64_t>(4, std::min<int64_t>(depth, slabs.bytes / row_bytes));
  const int64_t count = std::max<int64_t>(1, depth / target);
  const int64_t rows = std::max<int64_t>(4, depth / count / 4 * 4);
  const int64_t last_rows = depth - (count - 1) * rows;  // the rest: rows to rows + 3 (more where rows is 4)
  Tensor out = r.pool.acquire({n, cout, depth, up[3], up[4]});
  Tensor in_buf = r.pool.acquire({n, cin, last_rows + 2, up[3], up[4]});
  Tensor out_buf = r.pool.acquire({n, cout, last_rows, up[3], up[4]});
  for (int64_t o0 = 0, o1 = 0; o0 < depth; o0 = o1) {
    o1 = o0 + rows + rows > depth ? depth : o0 + rows;
    const int64_t i0 = std::max<int64_t>(0, o0 - 1), i1 = std::min(depth, o1 + 1);
    Tensor in_slab = Tensor::borrow(in_buf.data, DType::F32, {n, cin, i1 - i0, up[3], up[4]});
    Tensor out_slab = Tensor::borrow(out_buf.data, DType::F32, {n, cout, o1 - o0, up[3], up[4]});
    BL_RETURN_IF_ERROR(resize_nearest_rows(r.ctx, x, depth, i0, in_slab));
    Conv3dParams p = params;
    p.pad_before[0] = o0 == 0 ? 1 : 0;
    p.pad_after[0] = o1 == depth ? 1 : 0;
    BL_RETURN_IF_ERROR(conv3d(r.ctx, in_slab, weight, has_bias ? &bias : nullptr, p, out_slab));
    const int64_t slab_plane = (o1 - o0) * plane;
    float* dst = out.f32();
    const float* src = out_slab.f32();
    r.ctx.pool().parallel_for(n * cout, [&](int64_t begin, int64_t end, int) {
      for (int64_t c = begin; c < end; ++c)
        std::memcpy(dst + (c * depth + o0) * plane, src + c * slab_plane, sizeof(float) * slab_plane);
    });
  }
  *y = out;
  return Status::ok();
}

Status ConvLayer::split_output_channels(int blocks, std::vector<ConvLayer>* out) const {
  out->clear();
  if (blocks < 1 || cout % blocks != 0)
    return Status::range_error("ConvLayer: " + std::to_string(cout) + " output channels do not split into " +
                               std::to_string(blocks) + " equal blocks");
  const int per = cout / blocks;
  const int64_t w_per = static_cast<int64_t>(per) * cin * k * k * k;
  for (int b = 0; b < blocks; ++b) {
    ConvLayer l = *this;
    l.cout = per;
    l.weight = Tensor::borrow(static_cast<float*>(weight.data) + b * w_per, DType::F32, {per, cin, k, k, k});
    if (has_bias) l.bias = Tensor::borrow(static_cast<float*>(bias.data) + b * per, DType::F32, {per});
    l.params.packed = std::make_shared<PackedConvWeights>();
    out->push_back(std::move(l));
  }
  return Status::ok();
}

Status GroupNormLayer::bind(WeightStore& ws, const std::string& prefix, int channels, int g, float e, bool aff) {
  groups = g;
  eps = e;
  affine = aff;
  if (affine) {
    BL_RETURN_IF_ERROR(ws.take(prefix + ".weight", {channels}, &weight));
    BL_RETURN_IF_ERROR(ws.take(prefix + ".bias", {channels}, &bias));
  }
  return Status::ok();
}

Status GroupNormLayer::forward(NetRun& r, const Tensor& x, bool fuse_silu, Tensor* y, bool overwrite_input) const {
  LayerTimer timer(r, "group_norm", x);
  *y = overwrite_input ? x : r.pool.acquire(shape_of(x));
  return group_norm(r.ctx, x, groups, eps, affine ? &weight : nullptr, affine ? &bias : nullptr, fuse_silu, *y);
}

Status LayerNormLayer::bind(WeightStore& ws, const std::string& prefix, int channels) {
  BL_RETURN_IF_ERROR(ws.take(prefix + ".weight", {channels}, &weight));
  return ws.take(prefix + ".bias", {channels}, &bias);
}

Status LayerNormLayer::forward(NetRun& r, const Tensor& x, Tensor* y) const {
  LayerTimer timer(r, "layer_norm", x);
  *y = r.pool.acquire(shape_of(x));
  return layer_norm_channels(r.ctx, x, eps, &weight, &bias, *y);
}

Status NormLayer::bind_group(WeightStore& ws, const std::string& prefix, int channels, int groups, float eps) {
  spade = false;
  return group_norm.bind(ws, prefix, channels, groups, eps, true);
}

Status NormLayer::bind_spade(WeightStore& ws, const std::string& prefix, int channels, int groups, float eps,
                             bool param_free_affine, int label_nc, int hidden) {
  spade = true;
  BL_RETURN_IF_ERROR(group_norm.bind(ws, prefix + ".param_free_norm.N", channels, groups, eps, param_free_affine));
  BL_RETURN_IF_ERROR(mlp_shared.bind(ws, prefix + ".mlp_shared.conv", label_nc, hidden, 3, true));
  BL_RETURN_IF_ERROR(mlp_gamma.bind(ws, prefix + ".mlp_gamma.conv", hidden, channels, 3, true));
  BL_RETURN_IF_ERROR(mlp_beta.bind(ws, prefix + ".mlp_beta.conv", hidden, channels, 3, true));
  if (const char* v = std::getenv("BRAIN_LDM_SPADE_SLICE_ABOVE")) slice_above = std::strtoll(v, nullptr, 10);
  // Slices of at least 32 channels, a multiple of every kernel's output-channel block (AMX tiles hold 32: a
  // 16-channel slice would run half-empty tiles), at most kSpadeBlocks of them.
  const int blocks = std::min(kSpadeBlocks, channels / 32);
  if (blocks >= 2 && channels % (32 * blocks) == 0) {
    BL_RETURN_IF_ERROR(mlp_gamma.split_output_channels(blocks, &mlp_gamma_blocks));
    BL_RETURN_IF_ERROR(mlp_beta.split_output_channels(blocks, &mlp_beta_blocks));
  }
  // Where the whole convolution runs Winograd, slices of 64 channels still do (winograd_pays), so the wide
  // layers split in halves (or more) rather than not at all.
  if (channels % 64 == 0 && channels / 64 >= 2) {
    BL_RETURN_IF_ERROR(mlp_gamma.split_output_channels(channels / 64, &mlp_gamma_wide_blocks));
    BL_RETURN_IF_ERROR(mlp_beta.split_output_channels(channels / 64, &mlp_beta_wide_blocks));
  }
  return Status::ok();
}

namespace {

// One channel slice [c0, c0 + cb) of every batch item of y [N, C, ...] and the matching [N, cb, ...] map m:
// y = y * (1 + m) (beta null) or y = y + m, m instance-normalised first (MONAI's Convolution after the SPADE
// gamma/beta convs: non-affine InstanceNorm, eps 1e-5).
Status apply_spade_slice(NetRun& r, Tensor& m, Tensor& y, int64_t c0, bool is_gamma) {
  BL_RETURN_IF_ERROR(bl::group_norm(r.ctx, m, static_cast<int>(m.shape[1]), 1e-5f, nullptr, nullptr, false, m));
  const int64_t n = y.shape[0], c = y.shape[1], cb = m.shape[1];
  const int64_t spatial = y.numel() / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    Tensor ys = Tensor::borrow(y.f32() + (i * c + c0) * spatial, DType::F32, {cb, spatial});
    Tensor ms = Tensor::borrow(m.f32() + i * cb * spatial, DType::F32, {cb, spatial});
    BL_RETURN_IF_ERROR(is_gamma ? spade_modulate(r.ctx, ys, ms, nullptr, ys) : add(r.ctx, ys, ms, ys));
  }
  return Status::ok();
}

// gamma (is_gamma) or beta made and applied one slice of output channels at a time.
Status apply_spade_slices(NetRun& r, const std::vector<ConvLayer>& blocks, const Tensor& actv, Tensor& y, bool is_gamma) {
  for (size_t b = 0; b < blocks.size(); ++b) {
    Tensor m;
    BL_RETURN_IF_ERROR(blocks[b].forward(r, actv, &m));
    BL_RETURN_IF_ERROR(apply_spade_slice(r, m, y, static_cast<int64_t>(b) * blocks[b].cout, is_gamma));
  }
  return Status::ok();
}

}  // namespace

Status NormLayer::forward(NetRun& r, const Tensor& x, const Tensor* seg, bool fuse_silu, Tensor* y, bool overwrite_input) const {
  if (!spade) return group_norm.forward(r, x, fuse_silu, y, overwrite_input);
  if (!seg) return Status::range_error("SPADE: this network needs the label map input 'seg'");
  Tensor normalized;
  BL_RETURN_IF_ERROR(group_norm.forward(r, x, false, &normalized, overwrite_input));
  // The label map is resized (nearest) to this feature map's size, as F.interpolate(size=...) does.
  // At the label map's own size that is the label map (no copy: 33 full-resolution channels).
  std::vector<int64_t> seg_shape = shape_of(*seg);
  bool same_size = true;
  for (int i = 2; i < 5; ++i) {
    same_size = same_size && seg_shape[i] == x.shape[i];
    seg_shape[i] = x.shape[i];
  }
  Tensor seg_resized = *seg;
  if (!same_size) {
    seg_resized = r.pool.acquire(seg_shape);
    BL_RETURN_IF_ERROR(resize_nearest(r.ctx, *seg, seg_resized));
  }
  Tensor actv;
  BL_RETURN_IF_ERROR(mlp_shared.forward(r, seg_resized, &actv));
  BL_RETURN_IF_ERROR(leaky_relu(r.ctx, actv, 0.01f, actv));
  // MONAI's Convolution defaults to norm=INSTANCE, so gamma and beta each pass a non-affine
  // InstanceNorm (eps 1e-5) after their convolution: a GenerativeModels quirk we reproduce.
  // normalized * (1 + gamma) + beta in two passes, the product then the sum (PyTorch's order), so gamma is
  // released before beta exists: one C-channel map fewer at the decoder's full resolution. Where a map is
  // larger than kSpadeBlockAbove, gamma and beta are made and applied a slice of channels at a time (each
  // slice re-packs actv, a little more work, against three quarters of a map less at the peak: at 96x128x96
  // with 128 channels a map is 576 MB). Where the whole convolution runs Winograd (fp32, wide layers), slices
  // below its 64 channels would run direct: there the slices are 64 channels (each transforms actv again, which
  // the SPADE decoder's forward did not notice), and a 64-channel norm is not sliced.
  const int64_t map_bytes = static_cast<int64_t>(x.numel()) * 4;
  if (map_bytes > slice_above) {
    const std::vector<ConvLayer>* gamma_blocks = nullptr;
    const std::vector<ConvLayer>* beta_blocks = nullptr;
    if (!conv3d_uses_winograd(r.ctx, actv, mlp_gamma.weight, mlp_gamma.params)) {
      gamma_blocks = &mlp_gamma_blocks;
      beta_blocks = &mlp_beta_blocks;
    } else if (!mlp_gamma_wide_blocks.empty() &&
               conv3d_uses_winograd(r.ctx, actv, mlp_gamma_wide_blocks[0].weight, mlp_gamma_wide_blocks[0].params)) {
      gamma_blocks = &mlp_gamma_wide_blocks;
      beta_blocks = &mlp_beta_wide_blocks;
    }
    if (gamma_blocks && !gamma_blocks->empty()) {
      *y = normalized;
      BL_RETURN_IF_ERROR(apply_spade_slices(r, *gamma_blocks, actv, *y, true));
      BL_RETURN_IF_ERROR(apply_spade_slices(r, *beta_blocks, actv, *y, false));
      if (fuse_silu) BL_RETURN_IF_ERROR(silu(r.ctx, *y, *y));
      return Status::ok();
    }
  }
  Tensor gamma, beta;
  BL_RETURN_IF_ERROR(mlp_gamma.forward(r, actv, &gamma));
  BL_RETURN_IF_ERROR(bl::group_norm(r.ctx, gamma, static_cast<int>(gamma.shape[1]), 1e-5f, nullptr, nullptr, false, gamma));
  *y = normalized;
  BL_RETURN_IF_ERROR(spade_modulate(r.ctx, normalized, gamma, nullptr, *y));
  gamma = Tensor();
  BL_RETURN_IF_ERROR(mlp_beta.forward(r, actv, &beta));
  actv = Tensor();
  seg_resized = Tensor();
  BL_RETURN_IF_ERROR(bl::group_norm(r.ctx, beta, static_cast<int>(beta.shape[1]), 1e-5f, nullptr, nullptr, false, beta));
  BL_RETURN_IF_ERROR(add(r.ctx, *y, beta, *y));
  if (fuse_silu) BL_RETURN_IF_ERROR(silu(r.ctx, *y, *y));
  return Status::ok();
}

}  // namespace bl
