"""Benchmark: sampling + predictive vectors for 10^6 tokens, vectorised vs the plain per-token loop.

Run: python benchmarks/bench_ghmm.py   (prints a table; speed is measured here, never asserted in tests)
The naive loop is timed on 2*10^4 tokens and scaled to 10^6 (it is linear in the number of tokens).
"""
import time
import numpy as np
from factornb.ghmm import mess3, bloch_walk

def naive_sample_and_filter(proc, n, length, seed=0):
    "The plain per-token loop the simplest implementation would write: one sequence, one token at a time."
    rng = np.random.default_rng(seed)
    T, w = proc.transition_matrices, proc.normalizing_eigenvector
    emission = T @ w
    tokens, beliefs = np.empty((n, length), dtype=np.int64), np.empty((n, length, proc.num_states))
    for i in range(n):
        eta = proc.initial_state
        for t in range(length):
            p = np.clip(emission @ eta, 0, None)
            x = rng.choice(proc.vocab_size, p=p / p.sum())
            eta = eta @ T[x]; eta = eta / (eta @ w)
            tokens[i, t], beliefs[i, t] = x, eta
    return tokens, beliefs

def best_of(f, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
    return min(times)

if __name__ == "__main__":
    print(f"{'process':28s} {'shape':>12s} {'vectorised s':>13s} {'naive s (scaled)':>17s} {'speed-up':>9s}")
    for name, proc in (("Mess3(0.15, 0.6)", mess3(0.15, 0.6)), ("Bloch walk(1, 3)", bloch_walk(1, 3))):
        naive = best_of(lambda: naive_sample_and_filter(proc, 20, 1000), 1) * 1e6 / 2e4
        for n, length in ((1000, 1000), (125_000, 8)):
            fast = best_of(lambda: proc.sample(n, length, seed=0, return_beliefs=True))
            sep = best_of(lambda: proc.predictive_vectors(proc.sample(n, length, seed=0)))
            print(f"{name:28s} {f'{n}x{length}':>12s} {fast:13.3f} {naive:17.1f} {naive / fast:8.0f}x"
                  f"   (sample, then predictive_vectors separately: {sep:.3f} s)")
