"Packaging and command line: what notebooks are bad at testing."
import configparser, json, re, subprocess, sys
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


# --- the command line: bad input is one line on stderr and exit 2, for every subcommand -----------------------------
def _factornb(*args, cwd):
    "Run `factornb ARGS` in a fresh interpreter in `cwd`; (exit code, stdout, stderr)."
    code = "import sys; from factornb.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout, out.stderr


@pytest.mark.parametrize("args, outside", [
    (["readme"], True), (["readme", "--check"], True), (["book", "--out", "book"], True), (["execute"], True),
    (["execute", "--check"], True), (["execute", "--check", "nbs/no_such.ipynb"], False), (["execute", "nbs/no_such.ipynb"], False),
    (["execute", "--check", "settings.ini"], False), (["book", "--out", "settings.ini"], False),
    (["analyze", "no_such.pt", "--out", "x"], False)])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, outside):
    "Outside the repository (no settings.ini above) or with a missing/wrong path: exit 2, one line naming the command, no traceback."
    rc, out, err = _factornb(*args, cwd=tmp_path if outside else ROOT)
    assert rc == 2, (rc, out, err)
    assert err.count("\n") == 1 and err.startswith(f"factornb {args[0]}: error: ") and "Traceback" not in err, err
    assert ("settings.ini" in err) if outside else any(a in err for a in args[1:]), err


def _toy_repo(root: Path) -> Path:
    "A repository with one tiny notebook (no torch in it): settings.ini, nbs/, README.md."
    import nbformat
    (root / "nbs").mkdir()
    (root / "settings.ini").write_text("[DEFAULT]\nlib_name = toy\ndescription = A toy.\ntst_flags = slow\nallowed_metadata_keys = factornb\n"
                                       "allowed_cell_metadata_keys =\nclean_ids = True\nclear_all = False\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 — Toy\n\n> What $x^2$ is."), nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "nbs" / "01_toy.ipynb"); nbformat.write(nb, root / "nbs" / "index.ipynb")
    return root


@pytest.mark.parametrize("args, rc", [(["readme"], 0), (["book", "--out", "_book", "--check"], 0), (["execute", "nbs/01_toy.ipynb"], 0),
                                      (["execute", "--check"], 1)])      # the toy's notebooks are unexecuted: --check says so
def test_documentation_commands_do_not_import_torch(tmp_path, args, rc):
    "readme, book and execute register no chapter command, so torch is never imported (checked in a fresh interpreter)."
    root = _toy_repo(tmp_path)
    code = ("import sys; from factornb.cli import main; rc = main(sys.argv[1:]); "
            "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == rc, out.stdout + out.stderr
    assert out.stdout.strip().endswith("no torch"), out.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys; from factornb.cli import _parser; _parser(); print('torch' in sys.modules)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "True"      # the probe can see torch: the full parser (the chapters' commands) does load it


def test_execute_check_fails_on_stderr(tmp_path):
    "A committed output on stderr (a progress bar, a warning) fails `factornb execute --check`, naming the notebook and the cell."
    root = _toy_repo(tmp_path)
    nb_path = root / "nbs" / "01_toy.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][1]["source"] = "import sys; print('50%|#####     |', file=sys.stderr)"
    nb_path.write_text(json.dumps(nb))
    assert _factornb("execute", nb_path, cwd=root)[0] == 0
    rc, out, err = _factornb("execute", "--check", nb_path, cwd=root)
    cell_id = json.loads(nb_path.read_text())["cells"][1]["id"]
    assert rc == 1 and f"01_toy.ipynb: cell 1 (id {cell_id}) writes to stderr: '50%|#####     |'" in out, out + err
    nb = json.loads(nb_path.read_text()); nb["cells"][1]["source"] = "print(42)"; nb_path.write_text(json.dumps(nb))
    assert _factornb("execute", nb_path, cwd=root)[0] == 0
    assert _factornb("execute", "--check", nb_path, cwd=root)[0] == 0        # the same notebook, quiet: passes


def test_book_check_fails_on_untypeset_math(tmp_path):
    "`factornb book --check` passes on a book whose math is MathML and fails, naming the page, when raw `$…$` is left in its text."
    root = _toy_repo(tmp_path)
    rc, out, err = _factornb("book", "--out", "_book", "--check", cwd=root)
    assert rc == 0, out + err
    page = (root / "_book" / "01_toy.html").read_text()
    assert page.count("<math") == 1 and "$" not in page.split("<body", 1)[1].split("<pre", 1)[0]
    from factornb.cli import check_book, _book_exporter
    (root / "_book" / "01_toy.html").write_text(page.replace(page[page.index("<math"):page.index("</math>") + 7], "$x^2$"))
    assert check_book(root / "_book", root) == ["01_toy.html: 1 untypeset formula(s), e.g. '$x^2$'"]
    # a formula latex2mathml cannot parse stays TeX on the page, and a command it does not know stays in the MathML: both reported
    nb = json.loads((root / "nbs" / "01_toy.ipynb").read_text())
    nb["cells"][0]["source"] = "# 01 — Toy\n\nA broken formula $x^$ here, an unknown command $\\foo y$ there."
    (root / "nbs" / "01_toy.ipynb").write_text(json.dumps(nb))
    rc, out, err = _factornb("book", "--out", "_book", "--check", cwd=root)
    assert rc == 1 and "broken: 01_toy.html: 2 untypeset formula(s), e.g. '$x^$'" in out, out + err


def test_declared_dependencies(tmp_path):
    "Every third-party package that factornb/*.py imports is a requirement of the package (its own or an extra's), as setup.py builds it now."
    import ast, importlib.metadata as md
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    requires = (tmp_path / "factornb.egg-info" / "requires.txt").read_text().split()
    names = {re.split(r"[<>=!~\[; ]", r)[0].lower().replace("_", "-") for r in requires if r and not r.startswith("[")}
    imported = set()
    for f in (ROOT / "factornb").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import): imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module: imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"factornb", "__future__"}
    dists = md.packages_distributions()
    missing = {m: dists.get(m, [m]) for m in third_party if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & names}
    assert not missing, f"imported but not declared: {missing}"
