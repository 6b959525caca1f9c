#include "autoencoder_kl.h"

namespace bl {

namespace {

// One entry of encoder.blocks / decoder.blocks, in module order.
struct AeModule {
  enum Kind { Conv, Res, Attention, Downsample, Upsample, Norm } kind = Conv;
  ConvLayer conv;
  AeResBlock res;
  AttentionBlock attention;
  GroupNormLayer norm;
};

class AutoencoderKL : public Network {
 public:
  explicit AutoencoderKL(const NetworkSpec& spec) : Network(spec) {}

  Status bind(WeightStore& ws) {
    const NetworkSpec& s = spec_;
    const std::string root = s.embedding_rows > 0 ? "autoencoder." : "";
    if (s.embedding_rows > 0) BL_RETURN_IF_ERROR(ws.take("embedding.weight", {s.embedding_rows, s.embedding_dim}, &embedding_));
    BL_RETURN_IF_ERROR(bind_encoder(ws, root + "encoder.blocks."));
    BL_RETURN_IF_ERROR(bind_decoder(ws, root + "decoder.blocks."));
    upsample_slabs_ = UpsampleSlabs::from_env();
    BL_RETURN_IF_ERROR(quant_mu_.bind(ws, root + "quant_conv_mu.conv", s.latent_channels, s.latent_channels, 1, true));
    BL_RETURN_IF_ERROR(quant_log_sigma_.bind(ws, root + "quant_conv_log_sigma.conv", s.latent_channels, s.latent_channels, 1, true));
    return post_quant_.bind(ws, root + "post_quant_conv.conv", s.latent_channels, s.latent_channels, 1, true);
  }

  std::vector<std::string> entries() const override { return {"encode", "decode"}; }

  Status run_entry(Context& ctx, TensorPool& pool, const std::string& entry, const NamedTensors& in,
                   NamedTensors* out) override {
    ProfiledRun profiled(ctx, pool, spec_.class_name + " " + entry);
    NetRun& r = profiled.run();
    if (entry == "encode") return encode(r, in, out);
    if (entry == "decode") return decode(r, in, out);
    return Status::range_error(spec_.class_name + ": entry '" + entry + "' is unknown; expected encode or decode");
  }

 private:
  // Appends a module and sets `key` to its checkpoint prefix (<blocks>.<index>). Computed here,
  // not in the caller's argument list, whose evaluation order relative to the call differs
  // between compilers.
  AeModule& push(std::vector<AeModule>& list, AeModule::Kind kind, const std::string& prefix, std::string* key) {
    *key = prefix + std::to_string(list.size());
    list.emplace_back();
    list.back().kind = kind;
    return list.back();
  }

  Status bind_encoder(WeightStore& ws, const std::string& p) {
    const NetworkSpec& s = spec_;
    std::string k;
    {
      AeModule& m = push(encoder_, AeModule::Conv, p, &k);
      BL_RETURN_IF_ERROR(m.conv.bind(ws, k + ".conv", s.in_channels, s.num_channels[0], 3, true));
    }
    int out_ch = s.num_channels[0];
    const size_t levels = s.num_channels.size();
    for (size_t l = 0; l < levels; ++l) {
      int in_ch = out_ch;
      out_ch = s.num_channels[l];
      for (int j = 0; j < s.num_res_blocks[l]; ++j) {
        {
          AeModule& m = push(encoder_, AeModule::Res, p, &k);
          BL_RETURN_IF_ERROR(m.res.bind(ws, k, in_ch, out_ch, s, false));
        }
        in_ch = out_ch;
        if (s.attention_levels[l])
          {
            AeModule& m = push(encoder_, AeModule::Attention, p, &k);
            BL_RETURN_IF_ERROR(m.attention.bind(ws, k, in_ch, 1, s));
          }
      }
      if (l + 1 < levels) {
        // Downsample: zero-pad (0, 1) at the end of each spatial dim, then 3x3x3 stride 2, pad 0.
        {
          AeModule& m = push(encoder_, AeModule::Downsample, p, &k);
          BL_RETURN_IF_ERROR(m.conv.bind(ws, k + ".conv.conv", in_ch, in_ch, 3, true, 2, 0, 1));
        }
      }
    }
    const int last = s.num_channels.back();
    if (s.with_encoder_nonlocal_attn) {
      {
        AeModule& m = push(encoder_, AeModule::Res, p, &k);
        BL_RETURN_IF_ERROR(m.res.bind(ws, k, last, last, s, false));
      }
      {
        AeModule& m = push(encoder_, AeModule::Attention, p, &k);
        BL_RETURN_IF_ERROR(m.attention.bind(ws, k, last, 1, s));
      }
      {
        AeModule& m = push(encoder_, AeModule::Res, p, &k);
        BL_RETURN_IF_ERROR(m.res.bind(ws, k, last, last, s, false));
      }
    }
    {
      AeModule& m = push(encoder_, AeModule::Norm, p, &k);
      BL_RETURN_IF_ERROR(m.norm.bind(ws, k, last, s.norm_num_groups, s.norm_eps, true));
    }
    AeModule& m = push(encoder_, AeModule::Conv, p, &k);
    return m.conv.bind(ws, k + ".conv", last, s.latent_channels, 3, true);
  }

  Status bind_decoder(WeightStore& ws, const std::string& p) {
    const NetworkSpec& s = spec_;
    const bool spade = s.is_spade();
    std::string k;
    std::vector<int> rev(s.num_channels.rbegin(), s.num_channels.rend());
    std::vector<int> rev_res(s.num_res_blocks.rbegin(), s.num_res_blocks.rend());
    std::vector<int> rev_attn(s.attention_levels.rbegin(), s.attention_levels.rend());
    {
      AeModule& m = push(decoder_, AeModule::Conv, p, &k);
      BL_RETURN_IF_ERROR(m.conv.bind(ws, k + ".conv", s.latent_channels, rev[0], 3, true));
    }
    if (s.with_decoder_nonlocal_attn) {
      {
        AeModule& m = push(decoder_, AeModule::Res, p, &k);
        BL_RETURN_IF_ERROR(m.res.bind(ws, k, rev[0], rev[0], s, spade));
      }
      {
        AeModule& m = push(decoder_, AeModule::Attention, p, &k);
        BL_RETURN_IF_ERROR(m.attention.bind(ws, k, rev[0], 1, s));
      }
      {
        AeModule& m = push(decoder_, AeModule::Res, p, &k);
        BL_RETURN_IF_ERROR(m.res.bind(ws, k, rev[0], rev[0], s, spade));
      }
    }
    int out_ch = rev[0];
    for (size_t l = 0; l < rev.size(); ++l) {
      int in_ch = out_ch;
      out_ch = rev[l];
      for (int j = 0; j < rev_res[l]; ++j) {
        {
          AeModule& m = push(decoder_, AeModule::Res, p, &k);
          BL_RETURN_IF_ERROR(m.res.bind(ws, k, in_ch, out_ch, s, spade));
        }
        in_ch = out_ch;
        if (rev_attn[l])
          {
            AeModule& m = push(decoder_, AeModule::Attention, p, &k);
            BL_RETURN_IF_ERROR(m.attention.bind(ws, k, in_ch, 1, s));
          }
      }
      if (l + 1 < rev.size())
        {
          AeModule& m = push(decoder_, AeModule::Upsample, p, &k);
          BL_RETURN_IF_ERROR(m.conv.bind(ws, k + ".conv.conv", in_ch, in_ch, 3, true));
        }
      out_ch = in_ch;
    }
    {
      AeModule& m = push(decoder_, AeModule::Norm, p, &k);
      BL_RETURN_IF_ERROR(m.norm.bind(ws, k, out_ch, s.norm_num_groups, s.norm_eps, true));
    }
    AeModule& m = push(decoder_, AeModule::Conv, p, &k);
    return m.conv.bind(ws, k + ".conv", out_ch, s.out_channels, 3, true);
  }

  // Modules strictly in order: the final GroupNorm is followed directly by the conv, no SiLU.
  Status run_blocks(NetRun& r, const std::vector<AeModule>& blocks, const Tensor& x, const BlockInputs& in, Tensor* y) {
    Tensor h = x;
    for (const AeModule& m : blocks) {
      Tensor next;
      switch (m.kind) {
        case AeModule::Conv:
        case AeModule::Downsample:
          BL_RETURN_IF_ERROR(m.conv.forward(r, h, &next));
          break;
        case AeModule::Upsample:
          BL_RETURN_IF_ERROR(m.conv.forward_upsampled2x(r, h, upsample_slabs_, &next));
          break;
        case AeModule::Res: {
          const bool scratch = h.data != x.data;  // the network's own input stays the caller's
          BL_RETURN_IF_ERROR(m.res.forward(r, std::move(h), in, &next, scratch));
          break;
        }
        case AeModule::Attention: BL_RETURN_IF_ERROR(m.attention.forward(r, h, &next)); break;
        case AeModule::Norm: BL_RETURN_IF_ERROR(m.norm.forward(r, h, false, &next)); break;
      }
      h = next;
    }
    *y = h;
    return Status::ok();
  }

  Status encode(NetRun& r, const NamedTensors& in, NamedTensors* out) {
    const Tensor* x;
    BL_RETURN_IF_ERROR(network_input(in, "encode", "x", 5, true, &x));
    Tensor h = *x;
    if (spec_.embedding_rows > 0) {
      if (x->shape[1] != 1)
        return Status::range_error("encode: input 'x' has shape " + x->shape_string() + ", expected a label map [N, 1, D, H, W]");
      h = r.pool.acquire({x->shape[0], spec_.embedding_dim, x->shape[2], x->shape[3], x->shape[4]});
      BL_RETURN_IF_ERROR(embedding_channels(r.ctx, *x, embedding_, h));
    } else if (x->shape[1] != spec_.in_channels) {
      return Status::range_error("encode: input 'x' has " + std::to_string(x->shape[1]) + " channels, expected " + std::to_string(spec_.in_channels));
    }
    Tensor enc, mu, log_sigma;
    BL_RETURN_IF_ERROR(run_blocks(r, encoder_, h, BlockInputs{}, &enc));
    BL_RETURN_IF_ERROR(quant_mu_.forward(r, enc, &mu));
    BL_RETURN_IF_ERROR(quant_log_sigma_.forward(r, enc, &log_sigma));
    // MONAI clamps the log-variance to [-30, 20] and returns sigma = exp(logvar / 2).
    BL_RETURN_IF_ERROR(clamp(r.ctx, log_sigma, -30.0f, 20.0f, log_sigma));
    BL_RETURN_IF_ERROR(exp_scaled(r.ctx, log_sigma, 0.5f, log_sigma));
    (*out)["z_mu"] = mu;
    (*out)["z_sigma"] = log_sigma;
    return Status::ok();
  }

  Status decode(NetRun& r, const NamedTensors& in, NamedTensors* out) {
    const Tensor* z;
    BL_RETURN_IF_ERROR(network_input(in, "decode", in.count("z") ? "z" : "x", 5, true, &z));
    if (z->shape[1] != spec_.latent_channels)
      return Status::range_error("decode: input 'z' has " + std::to_string(z->shape[1]) + " channels, expected latent_channels " + std::to_string(spec_.latent_channels));
    BlockInputs bi;
    const Tensor* seg = nullptr;
    BL_RETURN_IF_ERROR(network_input(in, "decode", "seg", 5, spec_.is_spade(), &seg));
    if (seg && seg->shape[1] != spec_.label_nc)
      return Status::range_error("decode: input 'seg' has " + std::to_string(seg->shape[1]) + " channels, expected label_nc " + std::to_string(spec_.label_nc));
    bi.seg = seg;
    Tensor h, y;
    BL_RETURN_IF_ERROR(post_quant_.forward(r, *z, &h));
    BL_RETURN_IF_ERROR(run_blocks(r, decoder_, h, bi, &y));
    (*out)["out"] = y;
    return Status::ok();
  }

  Tensor embedding_;
  std::vector<AeModule> encoder_, decoder_;
  ConvLayer quant_mu_, quant_log_sigma_, post_quant_;
  UpsampleSlabs upsample_slabs_;
};

}  // namespace

Status create_autoencoder_kl(const NetworkSpec& spec, WeightStore& ws, std::unique_ptr<Network>* out) {
  return build_network<AutoencoderKL>(spec, ws, out);
}

}  // namespace bl
