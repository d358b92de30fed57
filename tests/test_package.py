"Packaging and command line: what notebooks are bad at testing."
import configparser, json, subprocess, sys
from pathlib import Path
import pytest
import factornb
from factornb.cli import main, notebook_to_markdown, write_readme

ROOT = Path(__file__).resolve().parents[1]

def test_version_matches_settings():
    cfg = configparser.ConfigParser(); cfg.read(ROOT / "settings.ini")
    assert factornb.__version__ == cfg["DEFAULT"]["version"]

def test_console_script_help():
    out = subprocess.run([sys.executable, "-c", "from factornb.cli import main; raise SystemExit(main(['--help']))"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "readme" in out.stdout and "book" in out.stdout

def test_readme_is_generated_from_index():
    assert write_readme(ROOT, check=True), "README.md is stale: run `factornb readme`"
    assert "bash .ci/run" in (ROOT / "README.md").read_text()

def test_every_module_has_a_notebook():
    "Each factornb/*.py module is exported from some notebook (never edited by hand)."
    exported = set()
    for nb in (ROOT / "nbs").glob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            exported |= {line.split("default_exp", 1)[1].strip() for line in src.splitlines() if line.startswith("#| default_exp")}
    modules = {p.stem for p in (ROOT / "factornb").glob("*.py") if not p.stem.startswith("_")}
    assert modules <= exported, modules - exported

def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as e: main(["definitely-not-a-command"])
    assert e.value.code == 2

def test_readme_outside_repo_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="settings.ini"): write_readme(tmp_path)
