"""Packaging for factornb, driven by `settings.ini` (nbdev 2 layout; no pkg_resources)."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

here = Path(__file__).parent
config = ConfigParser(delimiters=["="])
config.read(here / "settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

for key in "lib_name user description keywords author author_email license status min_python version".split():
    if key not in cfg: raise ValueError(f"settings.ini is missing the key {key!r}")

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()
min_python = cfg["min_python"]
license_name, license_classifier = licenses.get(cfg["license"], (cfg["license"], None))

requirements = cfg.get("requirements", "").split()
dev_requirements = cfg.get("dev_requirements", "").split()
readme = here / "README.md"

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    license=license_name,
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ] + [f"Programming Language :: Python :: {v}" for v in py_versions[py_versions.index(min_python):]]
      + ([f"License :: {license_classifier}"] if license_classifier else []),
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=[cfg["lib_name"], cfg["lib_name"] + ".*"]),
    include_package_data=True,
    install_requires=requirements,
    # dev: the tested nbdev-2 toolchain (newer execnb/fastcore break nbdev 2.4.14's imports);
    # hf: Hugging Face GPT-2 support for the activation layer and the agreement chapter.
    extras_require={"dev": dev_requirements + ["transformers>=4.40"], "hf": ["transformers>=4.40"]},
    python_requires=">=" + min_python,
    long_description=readme.read_text(encoding="utf-8") if readme.exists() else cfg["description"],
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={"console_scripts": cfg.get("console_scripts", "").split(), "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    description=cfg["description"],
    author=cfg["author"],
    author_email=cfg["author_email"],
    keywords=cfg["keywords"],
)
