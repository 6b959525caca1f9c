"""PyTorch side of bench/thesis-mask-unet.sh: the thesis-size mask UNet (MONAI GenerativeModels 0.2.3
DiffusionModelUNet, channels 256/512/768, ~553M parameters) with seeded random weights.

  make   OUT_DIR  -> OUT_DIR/thesis_unet.pth ({"model": state_dict}, as the thesis saves) and inputs.safetensors
  run    OUT_DIR BATCH REPEAT -> times the forward (median of REPEAT after one warm-up) with 2 threads,
                                  prints time and peak RSS, writes torch_out.safetensors
"""
import json
import resource
import statistics
import sys
import time

import torch
from generative.networks.nets import DiffusionModelUNet
from safetensors.torch import load_file, save_file

ARGS = dict(spatial_dims=3, in_channels=3, out_channels=3, num_res_blocks=2, num_channels=[256, 512, 768],
            attention_levels=[False, True, True], num_head_channels=[0, 512, 768], norm_num_groups=32,
            upcast_attention=True, resblock_updown=True, with_conditioning=True, cross_attention_dim=2)
LATENT = (3, 24, 32, 24)


def build():
    torch.manual_seed(0)
    net = DiffusionModelUNet(**ARGS)
    with torch.no_grad():  # zero-initialised output convs would make the comparison trivial
        for name, p in net.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 1 / (p[0].numel() ** 0.5))
            elif name.endswith('weight'):
                p.normal_(1, 0.1)
            else:
                p.normal_(0, 0.1)
    return net.eval()


def main():
    torch.set_num_threads(2)
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == 'make':
        net = build()
        torch.save({'model': net.state_dict()}, f'{out}/thesis_unet.pth')
        g = torch.Generator().manual_seed(1)
        for batch in (1, 2):
            x = torch.randn((batch,) + LATENT, generator=g)
            context = torch.tensor([[[0.4, 1.0]], [[0.7, 0.0]]])[:batch]
            save_file({'x': x, 'timesteps': torch.tensor([500.0]), 'context': context}, f'{out}/inputs_b{batch}.safetensors')
        with open(f'{out}/args.json', 'w') as f:
            json.dump(ARGS, f)
        print(f'parameters: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M')
        return
    batch, repeat = int(sys.argv[3]), int(sys.argv[4])
    net = DiffusionModelUNet(**ARGS)
    net.load_state_dict(torch.load(f'{out}/thesis_unet.pth', weights_only=True)['model'])
    net.eval()
    inp = load_file(f'{out}/inputs_b{batch}.safetensors')
    times = []
    with torch.no_grad():
        y = net(inp['x'], inp['timesteps'], context=inp['context'])
        for _ in range(repeat):
            t0 = time.perf_counter()
            y = net(inp['x'], inp['timesteps'], context=inp['context'])
            times.append(time.perf_counter() - t0)
    save_file({'out': y.contiguous()}, f'{out}/torch_out_b{batch}.safetensors')
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'pytorch {torch.__version__} fp32, 2 threads, batch {batch}: median forward {statistics.median(times) * 1000:.0f} ms '
          f'over {len(times)} runs; peak RSS {rss:.0f} MiB')


if __name__ == '__main__':
    main()
