"""Training throughput of the paper model (4 layers, d_model 120, vocab 433) on the paper's 5-factor process.

Prints predicted tokens per second of full training steps (sample + forward + backward + AdamW) and the
sampler's share of step time. Usage: python benchmarks/bench_train.py [--batch 2048] [--steps 10] [--device auto]
(on CUDA: bf16 autocast, data sampled on the device, default batch 25,000 as in the paper).
"""
import argparse, time
import torch
import torch.nn.functional as F
from factornb.factored import paper_process
from factornb.models import TransformerConfig, model_from_config
from factornb.train import resolve_device, inputs_and_labels, batch_generator

def sync(dev):
    if dev.type == "cuda": torch.cuda.synchronize()

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--batch", type=int, default=None); ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto"); ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    dev = resolve_device(a.device)
    if dev.type == "cpu": torch.set_num_threads(a.threads)
    B = a.batch or (25_000 if dev.type == "cuda" else 2048)
    proc = paper_process(); model = model_from_config(TransformerConfig(vocab_size=proc.vocab_size + 1)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    amp = dev.type == "cuda"
    t_sample = t_total = 0.0
    for step in range(a.steps + 2):            # 2 warm-up steps
        sync(dev); t0 = time.perf_counter()
        x = proc.sample_torch(B, 8, generator=batch_generator(77, step, dev), device=dev)
        sync(dev); t1 = time.perf_counter()
        inp, lab = inputs_and_labels(x, proc.bos_token)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(inp)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), lab.reshape(-1))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        sync(dev); t2 = time.perf_counter()
        if step >= 2: t_sample += t1 - t0; t_total += t2 - t0
    tokens = a.steps * B * 8
    print(f"device {dev} ({torch.get_num_threads()} threads), batch {B} x 8 tokens, {a.steps} steps")
    print(f"step time {t_total / a.steps * 1e3:.1f} ms, sampler {t_sample / a.steps * 1e3:.1f} ms ({100 * t_sample / t_total:.1f}% of step)")
    print(f"training throughput {tokens / t_total:,.0f} tokens/s (sampler alone {tokens / t_sample:,.0f} tokens/s)")

if __name__ == "__main__": main()
