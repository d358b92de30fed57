"""What exact-law targets cost per training step, against sampled labels, on paper 1's five-factor process.

Times, per step of the CPU default of `factornb train` (3 layers, d_model 96, batch 1,000): the sampler, the exact
next-token laws (`next_token_targets`), and the forward + backward + AdamW step with sampled labels and with exact laws;
and the sampled-label step at the paper's batch of 25,000 (micro-batches of 1,000), the recipe exact laws replace.
Usage: python benchmarks/bench_exact_targets.py [--steps 5] [--threads 1] [--skip-paper-batch]
"""
import argparse, time
import torch
from factornb.train import (TrainConfig, experiment_process, experiment_model, inputs_and_labels, batch_generator,
                            next_token_targets, seconds_per_step)

def timed(f, n):
    f(); t = time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter() - t) / n

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--steps", type=int, default=5); ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-paper-batch", action="store_true"); a = ap.parse_args()
    torch.set_num_threads(a.threads)
    proc = experiment_process("independent", scale="paper")
    model = experiment_model("transformer", proc, "paper", d_model=96, n_layers=3, n_heads=3)
    x = proc.sample_torch(1000, 8, generator=batch_generator(77, 0, "cpu"))
    sample = timed(lambda: proc.sample_torch(1000, 8, generator=batch_generator(77, 0, "cpu")), a.steps)
    laws = timed(lambda: next_token_targets(proc, x, proc.bos_token, model.config.vocab_size), a.steps)
    rows = {"sampled, batch 1,000": TrainConfig(batch_size=1000, lr=1e-3, micro_batch=1000, device="cpu"),
            "exact, batch 1,000": TrainConfig(batch_size=1000, lr=1e-3, micro_batch=1000, device="cpu", targets="exact")}
    if not a.skip_paper_batch: rows["sampled, batch 25,000"] = TrainConfig(batch_size=25_000, lr=1e-3, micro_batch=1000, device="cpu")
    print(f"{a.threads} thread(s); per step of 1,000 sequences: sampler {sample * 1e3:.0f} ms, exact laws {laws * 1e3:.0f} ms")
    for name, cfg in rows.items():
        s = seconds_per_step(model, proc, cfg, n_steps=a.steps if "25,000" not in name else 2)
        print(f"{name:>24}: {s:.3f} s per step, {s / (cfg.batch_size / 1000):.3f} s per 1,000 sequences")

if __name__ == "__main__": main()
