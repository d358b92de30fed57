"""Build results/paper1_recurrent from `factornb train` run folders; argv: OUT_DIR RUN_DIR[:PART_JSON] [...] (one subfolder per
run, named after the run folder without 'paper1_'). PART_JSON (optional): an analysis.json of checkpoints analysed earlier while
the training went on (`factornb analyze --no-vary-one`, merged); those steps are not analysed again, the last one always is (with
vary-one). Writes analysis.json/.png, final.pt (weights only), metrics.json and resume/ (the full training state of the last
step, from which `factornb train` continues the run)."""
import json, shutil, subprocess, sys
from pathlib import Path
import matplotlib; matplotlib.use("Agg")
from factornb.train import read_checkpoint, load_checkpoint, save_checkpoint, plot_checkpoint_analysis, TrainConfig
out = Path(sys.argv[1])
for arg in sys.argv[2:]:
    run, _, part = arg.partition(":"); run = Path(run)
    name = run.name.removeprefix("paper1_"); dst = out / name; dst.mkdir(parents=True, exist_ok=True)
    cks = sorted(run.glob("step_*.pt")); steps = [read_checkpoint(c)["step"] for c in cks]; last = steps[-1]
    done = [r for r in json.loads(Path(part).read_text())["checkpoints"] if r["step"] != last] if part else []
    have = {r["step"] for r in done}
    pick = [c for c, s in zip(cks, steps) if (s < 10 or (s < 500 and s % 20 == 0) or s % 100 == 0 or s == last) and s not in have]
    subprocess.run(["factornb", "analyze", *map(str, pick), "--out", str(dst)], check=True)
    an = json.loads((dst / "analysis.json").read_text())
    an["checkpoints"] = sorted(done + an["checkpoints"], key=lambda r: r["step"])
    for r in an["checkpoints"]: r["path"] = Path(r["path"]).name
    (dst / "analysis.json").write_text(json.dumps(an, indent=1))
    ck = read_checkpoint(cks[-1]); mc = ck["model_config"]
    plot_checkpoint_analysis(an, f"paper 1's process, {ck['architecture'].upper()} d {mc['d_model']}, batch {ck['train_config']['batch_size']:,} (CPU)").savefig(dst / "analysis.png", dpi=90)
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ck["train_config"].items()})
    save_checkpoint(dst / "final.pt", load_checkpoint(cks[-1]), last, cfg)          # weights only
    m = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else None
    if m is None or m["rows"][-1]["step"] < ck["metrics"][-1]["step"]:   # a run stopped by hand: its last checkpoint has the rows
        m = dict(train_config=ck["train_config"], rows=ck["metrics"])
    (dst / "metrics.json").write_text(json.dumps(m, indent=1))
    (dst / "resume").mkdir(exist_ok=True)
    for p in (dst / "resume").glob("step_*.pt"): p.unlink()
    shutil.copy(cks[-1], dst / "resume" / cks[-1].name)
    print(name, "last", last, {r["step"]: list(r["layers"].values())[-1]["dims95"] for r in an["checkpoints"]})
