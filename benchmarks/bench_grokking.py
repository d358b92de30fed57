"""Chapter 04: is it faster on CPU to train the grokking seeds side by side with torch.func (stack_module_state + vmap)
than in a Python loop? One AdamW step of the spec's model (2 post-LN layers, d 128, FFN 512, p = 53) at batch 512, seq 2,
for `--seeds` models; loss on the last position. Prints ms per step for all seeds together, loop vs vmap, and the
forward-only time. Usage: python benchmarks/bench_grokking.py [--seeds 3] [--steps 20] [--threads 1]
"""
import argparse, copy, time
import torch
import torch.nn.functional as F
from torch.func import stack_module_state, functional_call, vmap
from factornb.models import Transformer
from factornb.grokking import grok_config, modular_addition_data


def timed(fn, steps: int) -> float:
    for _ in range(3): fn()                                 # warm-up
    t0 = time.perf_counter()
    for _ in range(steps): fn()
    return (time.perf_counter() - t0) / steps * 1000


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--seeds", type=int, default=3); ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1); ap.add_argument("--batch", type=int, default=512)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = modular_addition_data(53); x, y = d.x_train[:a.batch], d.y_train[:a.batch]
    models = [Transformer(grok_config(53, seed=s)).train() for s in range(a.seeds)]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1.0) for m in models]

    def loop_step():
        for m, o in zip(models, opts):
            loss = F.cross_entropy(m(x)[:, -1], y); o.zero_grad(set_to_none=True); loss.backward(); o.step()

    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    vopt = torch.optim.AdamW(list(params.values()), lr=1e-3, weight_decay=1.0)
    def loss_one(p, b): return F.cross_entropy(functional_call(base, (p, b), (x,))[:, -1], y)
    batched = vmap(loss_one, randomness="different")          # x, y shared: only the weights are batched

    def vmap_step():
        loss = batched(params, buffers).sum(); vopt.zero_grad(set_to_none=True); loss.backward(); vopt.step()

    with torch.no_grad():
        for m in models: m.eval()
        fwd = timed(lambda: [m(x) for m in models], a.steps)
        for m in models: m.train()
    loop = timed(loop_step, a.steps); vm = timed(vmap_step, a.steps)
    print(f"{a.seeds} seeds, batch {a.batch}, {a.threads} thread(s): loop {loop:.1f} ms/step, vmap {vm:.1f} ms/step "
          f"(vmap/loop {vm / loop:.2f}); eval forward of all seeds {fwd:.1f} ms")


if __name__ == "__main__":
    main()
