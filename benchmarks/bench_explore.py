"""Redraw time of each factornb.explore explorer on one CPU thread: cold (first call, cached work done) and warm (a slider move).

Run: python benchmarks/bench_explore.py   (prints one line per explorer)"""
import time
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from threadpoolctl import threadpool_limits
from factornb import explore as ex, explore_processes as ep

def timed(fn, **kw):
    "Seconds for fn(**kw) plus rendering the figure (Agg), and the figure closed."
    t = time.perf_counter(); fig = fn(**kw); fig.canvas.draw(); dt = time.perf_counter() - t
    plt.close(fig); return dt

def bench(name, fn, cold: dict, warm: list, setup=None):
    setup_s = None
    if setup is not None:
        t = time.perf_counter(); setup(); setup_s = time.perf_counter() - t
    c = timed(fn, **cold)
    w = [timed(fn, **kw) for kw in warm]
    new = f"; setup (cached once) {setup_s:.2f} s" if setup_s is not None else ""
    print(f"{name:10s} cold {c:6.3f} s   warm redraw median {sorted(w)[len(w) // 2]:.3f} s, max {max(w):.3f} s over {len(w)} moves{new}")

if __name__ == "__main__":
    import os
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings scale with the load)")
    torch.set_num_threads(1)
    with threadpool_limits(1):
        bench("00 ghmm", ep.ghmm_explorer_figure, {},
              [dict(x=0.05 + 0.01 * i) for i in range(5)] + [dict()] * 3)
        bench("01 geometry", ep.geometry_explorer_figure, {},
              [dict(eps=e) for e in (0.0, 0.05, 0.1)] + [dict(chain=True), dict(n_bloch=0)] + [dict()] * 3)
        t = time.perf_counter(); snap = ex.tiny_training_run()["snapshots"]
        print(f"02c tiny training run (cached once per process): {time.perf_counter() - t:.2f} s")
        bench("02c train", lambda **kw: ex.training_explorer_figure(snap, **kw), {},
              [dict(step=s) for s in snap["steps"]])
        bench("03 ace", ex.ace_explorer_figure, {},
              [dict(rank=r) for r in range(1, 7)] + [dict(seed_a=1, seed_b=0)], setup=ex.small_markov_models)
        # 04: setup reads grok.json and re-measures every saved checkpoint (track_core, clock spectrum); moves scrub epochs, seeds and arms
        bench("04 grok", ex.grok_explorer_figure, {},
              [dict(epoch=e) for e in (0, 300, 500, 900, 1500, 2000)] + [dict(epoch=1200, seed=1), dict(epoch=2000, arm="branch")],
              setup=ex.grok_explorer_data)
        # 05: setup loads the LM and extracts the core; cold = the first figure (every sentence's strength curve, batched);
        # moves: the strength slider on one sentence, then another sentence (its curve is cached by then)
        bench("05 agree", ex.agreement_explorer_figure, {},
              [dict(strength=s) for s in (-2.0, -1.0, 0.0, 0.25, 0.5, 0.75, 1.5, 2.0)] + [dict(sentence=ex.AGREEMENT_EXPLORER_SENTENCES[3])],
              setup=ex.agreement_explorer_data)
