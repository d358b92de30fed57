"""Benchmark: sampling and predictive vectors for 1e6 tokens of the paper's 5-factor process, vectorised vs a plain
per-token loop. Prints numbers only (no asserts). Usage: python benchmarks/bench_factored.py [--device cuda]"""
import argparse, time
import numpy as np
import torch
from factornb.factored import paper_process, paper_chain_process, paper_noisy_process


def naive_sample_and_filter(proc, n, length, seed=0):
    "The plain loop: one sequence, one token, one factor at a time (independent factors, numpy)."
    rng = np.random.default_rng(seed)
    out = np.empty((n, length), dtype=np.int64)
    beliefs = [np.empty((n, length, f.num_states)) for f in proc.factors]
    for i in range(n):
        etas = [f.initial_state for f in proc.factors]
        for t in range(length):
            tok = 0
            for k, f in enumerate(proc.factors):
                p = np.clip(etas[k] @ f._emission.T, 0, None)
                x = rng.choice(f.vocab_size, p=p / p.sum())
                e = etas[k] @ f.transition_matrices[x]
                etas[k] = e / (e @ f.normalizing_eigenvector)
                beliefs[k][i, t] = etas[k]
                tok = tok * f.vocab_size + x
            out[i, t] = tok
    return out, beliefs


def timed(f, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter(); f(); best = min(best, time.perf_counter() - start)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_tok = 1_000_000
    n, length = n_tok // 8, 8
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    for name, proc in (("independent", paper_process()), ("chain", paper_chain_process()), ("noisy 0.2", paper_noisy_process(0.2))):
        g = torch.Generator(device=args.device).manual_seed(0)
        proc.sample_torch(1000, 8, generator=g, device=args.device)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        t_batch = timed(lambda: (proc.sample_torch(25_000, 8, generator=g, device=args.device), sync()), repeat=5)
        t_sample = timed(lambda: (proc.sample_torch(n, length, generator=g, device=args.device), sync()))
        toks = proc.sample(n, length, seed=0)
        t_filter = timed(lambda: proc.factor_predictive_vectors(toks), repeat=1)
        print(f"{name:12s} sample_torch 25,000x8: {t_batch * 1e3:7.1f} ms | 1e6 tokens: sample {t_sample:.3f} s "
              f"({t_sample / n_tok * 1e9:.0f} ns/token), factor predictive vectors {t_filter:.3f} s ({t_filter / n_tok * 1e9:.0f} ns/token)")
        if name == "independent":
            small = 2000
            t_joint = timed(lambda: proc.joint_predictive_vectors(toks[:12_500]), repeat=1)
            print(f"{'':12s} joint (243-dim) predictive vectors: {t_joint / 1e5 * 1e9:.0f} ns/token (on 1e5 tokens)")
            t_naive = timed(lambda: naive_sample_and_filter(proc, small // 8, 8), repeat=1)
            per_naive = t_naive / small
            per_fast = (t_sample + t_filter) / n_tok
            print(f"{'':12s} plain per-token loop (sample + beliefs): {per_naive * 1e6:.1f} us/token -> 1e6 tokens ~{per_naive * n_tok:.0f} s; "
                  f"vectorised {per_fast * 1e9:.0f} ns/token: {per_naive / per_fast:.0f}x faster")


if __name__ == "__main__":
    main()
