"""Build a results/paper1_* folder from a `factornb train` run folder of paper 1's process.
argv: RUN_DIR OUT_DIR PART_JSON [EXPERIMENT (default independent) [EPS (noise runs)]]. PART_JSON is the analysis.json of checkpoints analysed
earlier while the training went on (`factornb analyze --no-vary-one`, merged); the other checkpoints at steps < 10, every
20 steps and the last are analysed here, the last one with its vary-one overlaps (independent factors only: vary-one samples
each factor on its own, which the chain's dependencies do not allow). Writes analysis.json/.png, final.pt and
dip.pt (weights only: the last step and the step with the fewest last-layer dims@95 after step 100), resume/ (the full
training state of the last step) and metrics.json (the training-loss rows)."""
import json, shutil, subprocess, sys
from pathlib import Path
from factornb.train import read_checkpoint, load_checkpoint, save_checkpoint, TrainConfig
run, out, part = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
experiment = sys.argv[4] if len(sys.argv) > 4 else "independent"
eps = sys.argv[5] if len(sys.argv) > 5 else "0"
out.mkdir(parents=True, exist_ok=True)
cks = sorted(run.glob("step_*.pt")); steps = [read_checkpoint(c)["step"] for c in cks]
last = steps[-1]
done = json.loads(part.read_text())
done["checkpoints"] = [r for r in done["checkpoints"] if r["step"] != last]          # the last is analysed again, with vary-one
have = {r["step"] for r in done["checkpoints"]}
pick = [c for c, s in zip(cks, steps) if (s < 10 or s % 20 == 0 or s == last) and s not in have]
subprocess.run(["factornb", "analyze", *map(str, pick), "--experiment", experiment, "--eps", eps, "--out", str(out)]
               + ([] if experiment == "independent" else ["--no-vary-one"]), check=True)
an = json.loads((out / "analysis.json").read_text())
an["checkpoints"] = sorted(done["checkpoints"] + an["checkpoints"], key=lambda r: r["step"])
for r in an["checkpoints"]: r["path"] = Path(r["path"]).name
(out / "analysis.json").write_text(json.dumps(an, indent=1))
import matplotlib; matplotlib.use("Agg")
from factornb.train import plot_checkpoint_analysis
plot_checkpoint_analysis(an, f"paper 1's {experiment} process{f', ε = {eps}' if experiment == 'noise' else ''}, 3-layer d 96, batch 25,000 (CPU)").savefig(out / "analysis.png", dpi=90)
dims = {r["step"]: list(r["layers"].values())[-1]["dims95"] for r in an["checkpoints"]}
cand = [s for s in dims if s >= 100] or [s for s in dims if s > 0]
dip = min(cand, key=lambda s: (dims[s], s))
ck_last = read_checkpoint(cks[-1])
cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ck_last["train_config"].items()})
for name, s in (("final.pt", last), ("dip.pt", dip)):
    save_checkpoint(out / name, load_checkpoint(run / f"step_{s:08d}.pt"), s, cfg)
(out / "resume").mkdir(exist_ok=True)
for p in (out / "resume").glob("step_*.pt"): p.unlink()
shutil.copy(cks[-1], out / "resume" / cks[-1].name)
(out / "metrics.json").write_text(json.dumps(dict(train_config=ck_last["train_config"], rows=ck_last["metrics"]), indent=1))
print("last", last, "dip", dip, dims)
