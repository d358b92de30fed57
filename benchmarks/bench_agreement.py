"""Where the time of chapter 05 goes, per phase, on one scale.

Times a training step of the scale (`factornb cores agreement-train`'s recipe), then, on the committed model of that
scale, the phases of `measure_agreement`: states + gradients of 400 prompts (one forward+backward per batch), the intervened
readouts of 400 prompts with the KV-cache shortcut (prefix once, one token per edit) against full forward passes, and a
generation-flip sample. Usage: python benchmarks/bench_agreement.py [--scale small] [--threads 1]
"""
import argparse, time
import torch
import transformers
from factornb.agreement import load_causal_lm, prompt_sets, layer_states, agreement_core, mode_hook
from factornb import agreement as A
from factornb.grammar import make_lexicon, grammar_tokenizer
from factornb.activations import run_with_hooks

def timed(f, repeat=3):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return out, min(ts)

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--scale", default="small", choices=list(A.SCALES)); ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(); torch.set_num_threads(a.threads); transformers.logging.set_verbosity_error()
    cfg = {k: v for k, v in A.SCALES[a.scale].items() if k not in ("steps", "lr")}
    tok = grammar_tokenizer(make_lexicon()); model = A.grammar_lm(tok, **cfg); opt = torch.optim.AdamW(model.parameters())
    x = torch.randint(len(tok), (32, 48))
    def step():
        loss = model(input_ids=x, labels=x).loss; opt.zero_grad(); loss.backward(); opt.step()
    _, t = timed(step); print(f"training step ({a.scale}: 32 x 48 tokens): {1e3 * t:.0f} ms -> {A.SCALES[a.scale]['steps']} steps {A.SCALES[a.scale]['steps'] * t:.0f} s")
    model, tok = load_causal_lm(f"results/cores_agreement/{a.scale}"); L = model.config.n_layer
    sets = prompt_sets(); prompts = sets["test"].prompts
    S, t = timed(lambda: layer_states(model, tok, sets["extraction"].prompts), 1); print(f"states + gradients, 400 prompts, all layers: {1e3 * t:.0f} ms")
    core = agreement_core(S.states[L], S.gradients[L])
    iv = {"base": (0, None), "flip": (L, mode_hook(core, "flip"))}
    _, t = timed(lambda: A.last_token_readouts(model, tok, prompts, iv)); print(f"base + flip readouts, 400 prompts, KV cache: {1e3 * t:.0f} ms")
    def full():
        for ix, toks in A._length_groups(tok, prompts):
            run_with_hooks(model, toks, {A.layer_hook(model, L): mode_hook(core, "flip")([toks.shape[1] - 1])}); run_with_hooks(model, toks, {})
    _, t = timed(full); print(f"the same two readouts as full forward passes: {1e3 * t:.0f} ms")
    _, t = timed(lambda: A.generate_with_flip(model, tok, "the scientific research", core, L, 30), 1); print(f"30-token generation under the per-step flip (3 passes/step): {1e3 * t:.0f} ms")

if __name__ == "__main__": main()
