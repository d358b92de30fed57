"""Where the time of `factornb cores agreement` goes, per phase, on one model.

Trains one word-level GPT-2 (default 2 layers, width 128) for a few steps to time a training step, then times the
phases of `analyse_model` on it: states + gradients of 600 prompts (one forward+backward per batch), one
intervened held-out pass, and one generation-flip sample. Usage: python benchmarks/bench_agreement.py [--layers 2] [--threads 1]
"""
import argparse, time
import numpy as np
import torch
import transformers
from factornb.agreement import (agreement_corpus, word_tokenizer, train_agreement_lm, agreement_dataset, layer_states, agreement_core,
                                intervened_margins, mode_hook, generate_with_flip, FLIP_DEMO_PROMPTS, TOY_GENERATION_PROMPTS)

def timed(f, repeat=3):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return out, min(ts)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--layers", type=int, default=2); ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(); torch.set_num_threads(a.threads); transformers.logging.set_verbosity_error()
    corpus = agreement_corpus(20000, 0); tok = word_tokenizer(corpus + FLIP_DEMO_PROMPTS + TOY_GENERATION_PROMPTS)
    t0 = time.perf_counter(); model, _ = train_agreement_lm(corpus, tok, n_layers=a.layers, steps=30); t_step = (time.perf_counter() - t0) / 30
    print(f"training step (32 x 40 tokens, {a.layers} layers): {1e3 * t_step:.0f} ms -> 500 steps {500 * t_step:.0f} s")
    data = agreement_dataset(1200, 0, tok); ex = [data.prompts[i] for i in data.extraction]; ho = [data.prompts[i] for i in data.heldout]
    S, t = timed(lambda: layer_states(model, tok, ex)); print(f"states + gradients, 600 prompts, all layers: {1e3 * t:.0f} ms")
    core = agreement_core(S.states[a.layers], S.gradients[a.layers])
    _, t = timed(lambda: intervened_margins(model, tok, ho, a.layers, mode_hook(core, "flip"))); print(f"one intervened held-out pass (600 prompts): {1e3 * t:.0f} ms")
    _, t = timed(lambda: generate_with_flip(model, tok, "The teacher", core, a.layers, 50), 1); print(f"50-token generation under the per-step flip (3 passes/step): {1e3 * t:.0f} ms")

if __name__ == "__main__": main()
