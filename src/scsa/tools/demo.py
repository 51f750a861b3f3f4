"""``scsa demo``: apply SCSA to a batch and show what it does, in a few lines of output."""

from __future__ import annotations

import time

import torch

from scsa.attention import SCSA


def run_demo(channels: int = 64, size: int = 56, batch: int = 8, seed: int = 0) -> dict[str, float]:
    """Build ``SCSA(channels)``, run it on a random ``(batch, channels, size, size)`` batch and print
    shapes, parameter count, the parity of the default (fast) path with the readable definition, and
    the time of each. Returns the printed figures."""
    torch.manual_seed(seed)
    block = SCSA(channels).eval()
    x = torch.randn(batch, channels, size, size)
    with torch.no_grad():
        fast = block(x)
        plain = block.forward_plain(x)
        times = {}
        for name, fn in (("default", block), ("plain", block.forward_plain)):
            start = time.perf_counter()
            for _ in range(5):
                fn(x)
            times[name] = (time.perf_counter() - start) / 5
    params = sum(p.numel() for p in block.parameters())
    parity = ((fast - plain).abs().max() / plain.abs().max()).item()
    tokens = block.down_sample(x).shape[-2:]
    print(f"SCSA({channels}): {params:,} parameters (16·C = {16 * channels:,})")
    print(f"input  {tuple(x.shape)} -> output {tuple(fast.shape)}; PCSA pools to {tuple(tokens)} tokens")
    print(f"default path vs readable definition: max |diff| / max |out| = {parity:.2e} (contract: <= 1e-5)")
    print(
        f"eval time per batch: default {times['default'] * 1e3:.2f} ms, "
        f"readable {times['plain'] * 1e3:.2f} ms ({times['plain'] / times['default']:.1f}x)"
    )
    return {"params": params, "parity": parity, "default_s": times["default"], "plain_s": times["plain"]}
