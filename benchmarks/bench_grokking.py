"""Chapter 04: where one epoch of the paper's grokking run (3 seeds, p = 53, 2 post-LN layers d 128, FFN 512, batch 512,
3 AdamW steps per epoch) spends its time on a CPU thread, and what the last-position step saves.

Measures, for `--seeds` models:
- one AdamW step of all seeds: the model's forward (`model(x)[:, -1]`, before), `last_position_logits` (after), and the
  seeds stacked with torch.func (stack_module_state + vmap over the weights, dropout randomness="different"), the alternative
  the chapter rejected;
- one epoch of `GrokTrainer` (shuffle, per-seed RNG streams, 3 steps per seed) with `fast=False` and `fast=True`;
- one checkpoint's `track_core` (the core tracking of one seed), which the run pays every 100 epochs to 2000, then every 500.
- with `--profile`, the top operators of a few full-step epochs (torch.profiler, self CPU time).

Usage: python benchmarks/bench_grokking.py [--seeds 3] [--steps 20] [--epochs 5] [--threads 1] [--profile]

Measured 2026-12-02 on the shared 2-core machine, one thread, while two training runs and other jobs kept both cores busy
(load ~6), so absolute times are ~2x an idle core's (the committed run logged ~0.29 s per epoch):
- profile of the full step (3 epochs x 3 seeds): matrix products (aten::mm) 49% of self time, dropout masks
  (aten::bernoulli_) 15%, the attention's batched products (aten::bmm) 7.5%, elementwise mul/add ~7%, AdamW ~5%;
  the step is compute-bound, so stacking the seeds (vmap) has little overhead to remove: loop 341 ms, vmap 345 ms per step.
- a dropout mask of 512 x 2 x 512: bernoulli_ 3.9 ms, rand >= p 2.7 ms.
- one AdamW step of 3 seeds: full 265 / 293 ms, last-position 211 / 207 ms (1.26x / 1.41x), vmap of the full step
  271 / 268 ms (0.98x / 1.09x).
- GrokTrainer epoch, 3 seeds: full 0.65, 0.62, 0.72, 0.77 s; fast 0.48, 0.46, 0.55, 0.54 s (paired runs: 1.31-1.43x).
  The fast step's profile: aten::mm 54%, the dropout draws (aten::uniform_) 7.6%, aten::bmm 7.3%.
- track_core: 0.35-0.5 s per seed and checkpoint. With 3 seeds and 2 arms that is 2-3 s per checkpoint, about 5% of
  the training time between checkpoints every 100 epochs and under 1% every 500.
"""
import argparse, copy, time
import torch
import torch.nn.functional as F
from torch.func import stack_module_state, functional_call, vmap
from factornb.models import Transformer
from factornb.grokking import grok_config, modular_addition_data, last_position_logits, GrokTrainer, track_core


def timed(fn, steps: int) -> float:
    for _ in range(2): fn()                                 # warm-up
    t0 = time.perf_counter()
    for _ in range(steps): fn()
    return (time.perf_counter() - t0) / steps * 1000


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--seeds", type=int, default=3); ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=5); ap.add_argument("--threads", type=int, default=1); ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = modular_addition_data(53); x, y = d.x_train[:a.batch], d.y_train[:a.batch]
    models = [Transformer(grok_config(53, seed=s)).train() for s in range(a.seeds)]
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=1.0) for m in models]

    def loop_step(logits):
        for m, o in zip(models, opts):
            loss = F.cross_entropy(logits(m), y); o.zero_grad(set_to_none=True); loss.backward(); o.step()

    params, buffers = stack_module_state(models)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    vopt = torch.optim.AdamW(list(params.values()), lr=1e-3, weight_decay=1.0)
    def loss_one(p, b): return F.cross_entropy(functional_call(base, (p, b), (x,))[:, -1], y)
    batched = vmap(loss_one, randomness="different")          # x, y shared: only the weights are batched

    def vmap_step():
        loss = batched(params, buffers).sum(); vopt.zero_grad(set_to_none=True); loss.backward(); vopt.step()

    full = timed(lambda: loop_step(lambda m: m(x)[:, -1]), a.steps)
    fast = timed(lambda: loop_step(lambda m: last_position_logits(m, x)), a.steps)
    vm = timed(vmap_step, a.steps)
    print(f"{a.seeds} seeds, batch {a.batch}, {a.threads} thread(s), ms per AdamW step of all seeds: full {full:.1f}, "
          f"last-position {fast:.1f} ({full / fast:.2f}x), vmap of the full step {vm:.1f} ({full / vm:.2f}x)")
    for fast_ in (False, True):
        t = GrokTrainer(d, list(range(a.seeds)), fast=fast_); t.train_epoch()
        t0 = time.perf_counter()
        for _ in range(a.epochs): t.train_epoch()
        print(f"GrokTrainer(fast={fast_}): {(time.perf_counter() - t0) / a.epochs:.3f} s per epoch of {a.seeds} seeds")
    t0 = time.perf_counter(); track_core(t.models[0], d)
    print(f"track_core: {time.perf_counter() - t0:.2f} s per seed and checkpoint")
    if a.profile:
        from torch.profiler import profile, ProfilerActivity
        t = GrokTrainer(d, list(range(a.seeds)))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3): t.train_epoch()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
