#include "diffusion_unet.h"

#include <algorithm>
#include <cmath>

namespace bl {

namespace {

struct DownLevel {
  std::vector<ResnetBlock> resnets;
  std::vector<AttentionSlot> attentions;  // one per resnet, kind None when the level has none
  bool has_downsampler = false;
  bool resblock_down = false;
  ResnetBlock down_resnet;
  ConvLayer down_conv;  // Downsample.op: 3x3x3 stride 2 pad 1
};

struct UpLevel {
  std::vector<ResnetBlock> resnets;
  std::vector<AttentionSlot> attentions;
  bool has_upsampler = false;
  bool resblock_up = false;
  ResnetBlock up_resnet;
  ConvLayer up_conv;  // Upsample: nearest x2, then 3x3x3 conv
};

// y = W x + b on a few host vectors (time MLP): x [rows, in], W [out, in].
void host_linear(const float* x, int64_t rows, int64_t in, const Tensor& w, const Tensor& b, float* y, bool silu_input) {
  const int64_t out = w.shape[0];
  std::vector<double> xin(in);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < in; ++i) {
      double v = x[r * in + i];
      xin[i] = silu_input ? v / (1.0 + std::exp(-v)) : v;
    }
    for (int64_t o = 0; o < out; ++o) {
      const float* wr = w.f32() + o * in;
      double s = b.f32()[o];
      for (int64_t i = 0; i < in; ++i) s += wr[i] * xin[i];
      y[r * out + o] = static_cast<float>(s);
    }
  }
}

class DiffusionUNet : public Network {
 public:
  explicit DiffusionUNet(const NetworkSpec& spec) : Network(spec) {}

  std::vector<std::string> entries() const override { return {"forward"}; }

  Status bind(WeightStore& ws) {
    const NetworkSpec& s = spec_;
    const int c0 = s.num_channels[0];
    temb_ = c0 * 4;
    const size_t levels = s.num_channels.size();
    BL_RETURN_IF_ERROR(conv_in_.bind(ws, "conv_in.conv", s.in_channels, c0, 3, true));
    BL_RETURN_IF_ERROR(ws.take("time_embed.0.weight", {temb_, c0}, &time_w0_));
    BL_RETURN_IF_ERROR(ws.take("time_embed.0.bias", {temb_}, &time_b0_));
    BL_RETURN_IF_ERROR(ws.take("time_embed.2.weight", {temb_, temb_}, &time_w2_));
    BL_RETURN_IF_ERROR(ws.take("time_embed.2.bias", {temb_}, &time_b2_));
    if (s.num_class_embeds > 0) BL_RETURN_IF_ERROR(ws.take("class_embedding.weight", {s.num_class_embeds, temb_}, &class_w_));

    down_.resize(levels);
    int out_ch = c0;
    for (size_t l = 0; l < levels; ++l) {
      const std::string p = "down_blocks." + std::to_string(l);
      int in_ch = out_ch;
      out_ch = s.num_channels[l];
      DownLevel& d = down_[l];
      d.resnets.resize(s.num_res_blocks[l]);
      d.attentions.resize(s.num_res_blocks[l]);
      for (int j = 0; j < s.num_res_blocks[l]; ++j) {
        BL_RETURN_IF_ERROR(d.resnets[j].bind(ws, p + ".resnets." + std::to_string(j), j == 0 ? in_ch : out_ch, out_ch, temb_, false, false, s, false));
        if (s.attention_levels[l])
          BL_RETURN_IF_ERROR(d.attentions[j].bind(ws, p + ".attentions." + std::to_string(j), out_ch, s.num_head_channels[l], s));
      }
      d.has_downsampler = l + 1 < levels;
      d.resblock_down = s.resblock_updown;
      if (d.has_downsampler) {
        if (s.resblock_updown)
          BL_RETURN_IF_ERROR(d.down_resnet.bind(ws, p + ".downsampler", out_ch, out_ch, temb_, false, true, s, false));
        else
          BL_RETURN_IF_ERROR(d.down_conv.bind(ws, p + ".downsampler.op.conv", out_ch, out_ch, 3, true, 2, 1, 1));
      }
    }

    const int last = s.num_channels.back();
    BL_RETURN_IF_ERROR(mid_resnet1_.bind(ws, "middle_block.resnet_1", last, last, temb_, false, false, s, false));
    // The middle block always attends, whatever attention_levels says.
    BL_RETURN_IF_ERROR(mid_attention_.bind(ws, "middle_block.attention", last, s.num_head_channels.back(), s));
    BL_RETURN_IF_ERROR(mid_resnet2_.bind(ws, "middle_block.resnet_2", last, last, temb_, false, false, s, false));

    std::vector<int> rev(s.num_channels.rbegin(), s.num_channels.rend());
    std::vector<int> rev_res(s.num_res_blocks.rbegin(), s.num_res_blocks.rend());
    std::vector<int> rev_attn(s.attention_levels.rbegin(), s.attention_levels.rend());
    std::vector<int> rev_heads(s.num_head_channels.rbegin(), s.num_head_channels.rend());
    up_.resize(levels);
    out_ch = rev[0];
    const bool spade = s.is_spade();
    for (size_t i = 0; i < levels; ++i) {
      const std::string p = "up_blocks." + std::to_string(i);
      const int prev_out = out_ch;
      out_ch = rev[i];
      const int in_ch = rev[std::min(i + 1, levels - 1)];
      UpLevel& u = up_[i];
      const int count = rev_res[i] + 1;
      u.resnets.resize(count);
      u.attentions.resize(count);
      for (int j = 0; j < count; ++j) {
        const int skip_ch = j == count - 1 ? in_ch : out_ch;
        const int res_in = j == 0 ? prev_out : out_ch;
        BL_RETURN_IF_ERROR(u.resnets[j].bind(ws, p + ".resnets." + std::to_string(j), res_in + skip_ch, out_ch, temb_, false, false, s, spade));
        if (rev_attn[i]) BL_RETURN_IF_ERROR(u.attentions[j].bind(ws, p + ".attentions." + std::to_string(j), out_ch, rev_heads[i], s));
      }
      u.has_upsampler = i + 1 < levels;
      u.resblock_up = s.resblock_updown;
      if (u.has_upsampler) {
        // The upsampler has no SPADE, even in SPADEDiffusionModelUNet.
        if (s.resblock_updown)
          BL_RETURN_IF_ERROR(u.up_resnet.bind(ws, p + ".upsampler", out_ch, out_ch, temb_, true, false, s, false));
        else
          BL_RETURN_IF_ERROR(u.up_conv.bind(ws, p + ".upsampler.conv.conv", out_ch, out_ch, 3, true));
      }
    }
    BL_RETURN_IF_ERROR(out_norm_.bind(ws, "out.0", c0, s.norm_num_groups, s.norm_eps, true));
    return out_conv_.bind(ws, "out.2.conv", c0, s.out_channels, 3, true);
  }

  Status run_entry(Context& ctx, TensorPool& pool, const std::string& entry, const NamedTensors& in,
                   NamedTensors* out) override {
    if (entry != "forward")
      return Status::range_error(spec_.class_name + ": entry '" + entry + "' is unknown; expected forward");
    ProfiledRun profiled(ctx, pool, spec_.class_name + " " + entry);
    NetRun& r = profiled.run();
    const NetworkSpec& s = spec_;
    const Tensor *x, *t, *context = nullptr, *seg = nullptr, *labels = nullptr;
    BL_RETURN_IF_ERROR(network_input(in, entry, "x", 5, true, &x));
    BL_RETURN_IF_ERROR(network_input(in, entry, "timesteps", 1, true, &t));
    BL_RETURN_IF_ERROR(network_input(in, entry, "context", 3, s.with_conditioning, &context));
    BL_RETURN_IF_ERROR(network_input(in, entry, "seg", 5, s.is_spade(), &seg));
    BL_RETURN_IF_ERROR(network_input(in, entry, "class_labels", 1, s.num_class_embeds > 0, &labels));
    const int64_t n = x->shape[0];
    if (x->shape[1] != s.in_channels)
      return Status::range_error("forward: input 'x' has " + std::to_string(x->shape[1]) + " channels, expected in_channels " + std::to_string(s.in_channels));
    if (t->shape[0] != 1 && t->shape[0] != n)
      return Status::range_error("forward: input 'timesteps' has shape " + t->shape_string() + ", expected [1] or [" + std::to_string(n) + "]");
    if (context && !s.with_conditioning)
      return Status::range_error("forward: input 'context' was given but the network has with_conditioning false");
    if (context && (context->shape[0] != n || context->shape[2] != s.cross_attention_dim))
      return Status::range_error("forward: input 'context' has shape " + context->shape_string() + ", expected [" +
                                 std::to_string(n) + ", tokens, " + std::to_string(s.cross_attention_dim) + "]");
    if (seg && seg->shape[1] != s.label_nc)
      return Status::range_error("forward: input 'seg' has " + std::to_string(seg->shape[1]) + " channels, expected label_nc " + std::to_string(s.label_nc));
    for (int i = 2; i < 5; ++i)
      if (x->shape[i] % (1 << (s.num_channels.size() - 1)) != 0)
        return Status::range_error("forward: input 'x' has shape " + x->shape_string() + ": spatial sizes must be divisible by " +
                                   std::to_string(1 << (s.num_channels.size() - 1)));

    // Time embedding, then the optional class embedding added to it.
    const int64_t c0 = s.num_channels[0];
    Tensor temb_in = r.pool.acquire({t->shape[0], c0});
    BL_RETURN_IF_ERROR(timestep_embedding(ctx, *t, static_cast<int>(c0), temb_in));
    std::vector<float> hidden(t->shape[0] * temb_);
    host_linear(temb_in.f32(), t->shape[0], c0, time_w0_, time_b0_, hidden.data(), false);
    const int64_t rows = labels ? n : t->shape[0];
    Tensor emb = r.pool.acquire({rows, temb_});
    std::vector<float> emb_t(t->shape[0] * temb_);
    host_linear(hidden.data(), t->shape[0], temb_, time_w2_, time_b2_, emb_t.data(), true);
    for (int64_t b = 0; b < rows; ++b) {
      const float* src = emb_t.data() + (t->shape[0] == 1 ? 0 : b) * temb_;
      float* dst = emb.f32() + b * temb_;
      for (int64_t i = 0; i < temb_; ++i) dst[i] = src[i];
      if (labels) {
        float v = labels->f32()[b];
        int64_t id = static_cast<int64_t>(v);
        if (v != static_cast<float>(id) || id < 0 || id >= s.num_class_embeds)
          return Status::range_error("forward: input 'class_labels' holds " + std::to_string(v) + ", expected an integer in [0, " + std::to_string(s.num_class_embeds) + ")");
        for (int64_t i = 0; i < temb_; ++i) dst[i] += class_w_.f32()[id * temb_ + i];
      }
    }

    BlockInputs bi;
    bi.emb = &emb;
    bi.seg = seg;
    Tensor context_cf;
    if (context) {
      // [N, tokens, D] -> channels-first [N, D, tokens], the layout every linear here takes.
      const int64_t tokens = context->shape[1], dim = context->shape[2];
      context_cf = r.pool.acquire({n, dim, tokens});
      for (int64_t b = 0; b < n; ++b)
        for (int64_t k = 0; k < tokens; ++k)
          for (int64_t d = 0; d < dim; ++d)
            context_cf.f32()[(b * dim + d) * tokens + k] = context->f32()[(b * tokens + k) * dim + d];
      bi.context = &context_cf;
    }

    Tensor h;
    BL_RETURN_IF_ERROR(conv_in_.forward(r, *x, &h));
    std::vector<Tensor> skips = {h};
    for (const DownLevel& d : down_) {
      for (size_t j = 0; j < d.resnets.size(); ++j) {
        BL_RETURN_IF_ERROR(d.resnets[j].forward(r, h, bi, &h));
        BL_RETURN_IF_ERROR(d.attentions[j].forward(r, h, bi, &h));
        skips.push_back(h);
      }
      if (d.has_downsampler) {
        if (d.resblock_down) BL_RETURN_IF_ERROR(d.down_resnet.forward(r, h, bi, &h));
        else BL_RETURN_IF_ERROR(d.down_conv.forward(r, h, &h));
        skips.push_back(h);
      }
    }
    BL_RETURN_IF_ERROR(mid_resnet1_.forward(r, h, bi, &h));
    BL_RETURN_IF_ERROR(mid_attention_.forward(r, h, bi, &h));
    BL_RETURN_IF_ERROR(mid_resnet2_.forward(r, h, bi, &h));
    for (const UpLevel& u : up_) {
      for (size_t j = 0; j < u.resnets.size(); ++j) {
        Tensor skip = skips.back();
        skips.pop_back();
        std::vector<int64_t> cs = shape_of(h);
        cs[1] += skip.shape[1];
        Tensor cat = r.pool.acquire(cs);
        Tensor parts[2] = {h, skip};
        BL_RETURN_IF_ERROR(concat_channels(ctx, parts, 2, cat));
        BL_RETURN_IF_ERROR(u.resnets[j].forward(r, cat, bi, &h));
        BL_RETURN_IF_ERROR(u.attentions[j].forward(r, h, bi, &h));
      }
      if (u.has_upsampler) {
        if (u.resblock_up) {
          BL_RETURN_IF_ERROR(u.up_resnet.forward(r, h, bi, &h));
        } else {
          std::vector<int64_t> us = shape_of(h);
          for (int i = 2; i < 5; ++i) us[i] *= 2;
          Tensor up = r.pool.acquire(us);
          BL_RETURN_IF_ERROR(resize_nearest(ctx, h, up));
          BL_RETURN_IF_ERROR(u.up_conv.forward(r, up, &h));
        }
      }
    }
    Tensor normed, y;
    BL_RETURN_IF_ERROR(out_norm_.forward(r, h, true, &normed));
    BL_RETURN_IF_ERROR(out_conv_.forward(r, normed, &y));
    (*out)["out"] = y;
    return Status::ok();
  }

 private:
  int temb_ = 0;
  ConvLayer conv_in_;
  Tensor time_w0_, time_b0_, time_w2_, time_b2_, class_w_;
  std::vector<DownLevel> down_;
  ResnetBlock mid_resnet1_, mid_resnet2_;
  AttentionSlot mid_attention_;
  std::vector<UpLevel> up_;
  GroupNormLayer out_norm_;
  ConvLayer out_conv_;
};

}  // namespace

Status create_diffusion_unet(const NetworkSpec& spec, WeightStore& ws, std::unique_ptr<Network>* out) {
  return build_network<DiffusionUNet>(spec, ws, out);
}

}  // namespace bl
