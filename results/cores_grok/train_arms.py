"""Train ONE arm of a grok run (results/cores_grok/state.pt) to `target` in its own process, one thread, checkpoints
tracked exactly as grokking.grok_run does; then `merge` folds the arm parts back into state.pt and grok.json.

usage: python results/cores_grok/train_arms.py train ARM TARGET STATE WORKDIR
       python results/cores_grok/train_arms.py merge STATE WORKDIR OUT
Arms are independent (own weights, AdamW, shuffle and dropout generators), so training them in two processes is the
same computation as grok_run's alternation."""
import os, sys, time, json, shutil
from pathlib import Path
import torch
from factornb.grokking import (GrokTrainer, modular_addition_data, checkpoint_epochs, track_core, grok_epoch,
                               _read_state, _save_state, _save_weights)
from factornb.train import write_json_atomic


def save_part(p, path):
    tmp = path.with_name(path.name + ".tmp"); torch.save(p, tmp); os.replace(tmp, path)


def train(arm, target, state, workdir):
    torch.set_num_threads(1)
    workdir.mkdir(parents=True, exist_ok=True); part = workdir / f"{arm}.pt"
    st = _read_state(state); S = st["settings"]
    if part.exists(): p = torch.load(part, weights_only=True)
    else: p = {"trainer": st[arm], "records": [], "seconds": 0.0, "saved": None}
    data = modular_addition_data(S["p"], S["train_fraction"])
    t = GrokTrainer.from_state(p["trainer"], data)
    cadence = set(checkpoint_epochs(S["epochs"], S["every"], S["coarse_after"], S["coarse_every"]))
    save_seed = S["seeds"][0]; t0 = time.time()
    while t.epoch < target:
        t.fast = S["fast_after"] is not None and t.epoch + 1 > S["fast_after"]
        t.train_epoch()
        if t.epoch in cadence and (arm == "main" or t.epoch > S["branch_at"]):
            p["seconds"] += time.time() - t0; t0 = time.time()
            for s, m in zip(t.seeds, t.models): p["records"].append({"epoch": t.epoch, "seed": s, **track_core(m, data)})
            _save_weights(t.models[t.seeds.index(save_seed)], workdir / f"seed{save_seed}_{arm}_end.pt", t.epoch); p["saved"] = t.epoch
            p["trainer"] = t.state_dict(); save_part(p, part)
            print(arm, t.epoch, time.strftime("%T"), flush=True)
        elif t.epoch % 100 == 0:
            p["seconds"] += time.time() - t0; t0 = time.time(); p["trainer"] = t.state_dict(); save_part(p, part)
    p["seconds"] += time.time() - t0; p["trainer"] = t.state_dict(); save_part(p, part)


def merge(state, workdir, out):
    st = _read_state(state); S = st["settings"]; save_seed = S["seeds"][0]
    for arm in ("main", "branch"):
        part = workdir / f"{arm}.pt"
        if not part.exists(): continue
        p = torch.load(part, weights_only=True)
        top = max(r["epoch"] for r in st["records"][arm])
        assert all(r["epoch"] > top for r in p["records"]), (arm, top)
        st["records"][arm] += p["records"]; st[arm] = p["trainer"]; st["seconds"][arm] += p["seconds"]
        if p["saved"] is not None:
            name = f"seed{save_seed}_{arm}_end.pt"; shutil.copyfile(workdir / name, out / (name + ".tmp")); os.replace(out / (name + ".tmp"), out / name)
            st["saved"][f"{arm}_end"] = {"file": name, "epoch": p["saved"]}
    _save_state(st, state)
    prior = json.loads((out / "grok.json").read_text()) if (out / "grok.json").exists() else {}
    res = {"p": S["p"], "grok_epoch": grok_epoch(st["records"]["main"]), "settings": S, "seconds": st["seconds"],
           "checkpoints": st["records"]["main"],
           "branch": {"from_epoch": S["branch_at"], "weight_decay": S["branch_weight_decay"], "checkpoints": st["records"]["branch"]},
           "weights": {**prior.get("weights", {}), **st["saved"]}}
    write_json_atomic(out / "grok.json", res)
    print("merged:", {arm: max(r["epoch"] for r in st["records"][arm]) for arm in ("main", "branch")})


if __name__ == "__main__":
    if sys.argv[1] == "train": train(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
    else: merge(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
