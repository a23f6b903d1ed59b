#!/usr/bin/env bash
# What benchmarks/gpu.sh needs on a GPU machine that has Python, torch, OpenCV, pandas and matplotlib but no
# network and no Jupyter (such as a lent H200 with Python 3.12):
#
#     bash benchmarks/gpu_pack.sh DEST [PYTHON_VERSION]     e.g. bash benchmarks/gpu_pack.sh .gpu 3.12
#
# DEST/wheels: papermill, ipykernel, nbconvert, pydantic, rapidfuzz and what they need, as binary wheels for
#   that Python on manylinux x86-64, less the packages such a machine has already (the list below);
# DEST/pkgs/mplfonts: the three fonts plate_lib uses, cut to the characters it draws and writes (pyftsubset;
#   every glyph renders as from the full font), in place of the 100 MB mplfonts package;
# DEST/data: the CCPD sample's held-out test photos and real-crops-lyl8213, for the report's evaluation sets.
# DEST/data copies ../shared data: keep DEST out of git (.gpu/ is in .gitignore) and delete it after the run.
# On the machine:
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site DEST/wheels/*.whl
#     export PYTHONPATH=/tmp/site:$PWD/DEST/pkgs:$PWD JUPYTER_PATH=/tmp/site/share/jupyter
#     bash benchmarks/gpu.sh OUT DEST/data/ccpd2019-sample-test DEST/data/real-crops-lyl8213
# Within a lent GPU's 15 minutes (about 2 to start the machine), fit the stages to about 9 minutes:
#     BENCH_S=90 REPORT_S=300 REPORT_TRAIN_S=120 SEED_S=150 SEED_TRAIN_S=60 bash benchmarks/gpu.sh …
set -euo pipefail
dest=${1:?usage: bash benchmarks/gpu_pack.sh DEST [PYTHON_VERSION]}
pyver=${2:-3.12}
cd "$(dirname "$0")/.."
py=.venv/bin/python
mkdir -p "$dest/wheels" "$dest/pkgs/mplfonts/fonts" "$dest/data"

# the report's packages, at the versions .venv has
pins=$($py -m pip list --format=freeze 2>/dev/null | grep -i -E '^(papermill|ipykernel|nbconvert|pydantic|rapidfuzz)==')
python3 -m pip download -q --only-binary=:all: --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 \
    -d "$dest/wheels" $pins 2>&1 | grep -v "is ignored" || true
# already on the machine (its image's package list): theirs are kept
for p in attrs certifi charset_normalizer click idna jinja2 markupsafe packaging psutil pygments python_dateutil \
         pyyaml requests tqdm urllib3 tzdata; do
    rm -f "$dest/wheels/$p"-*.whl
done

# the fonts, cut to the characters plate_lib draws or writes
fonts=$($py -c "import mplfonts, pathlib; print(pathlib.Path(mplfonts.__file__).parent / 'fonts')")
$py - "$dest/chars.txt" <<'EOF'
import pathlib, string, sys
from plate_lib.plates import PROVINCES
chars = set(string.printable) | set("".join(PROVINCES))
for p in [*pathlib.Path("plate_lib").rglob("*.py"), *pathlib.Path("notebooks").glob("*.py")]:
    chars |= set(p.read_text(encoding="utf-8"))
pathlib.Path(sys.argv[1]).write_text("".join(sorted(c for c in chars if c.isprintable())), encoding="utf-8")
EOF
for f in NotoSansCJKsc-Regular.otf SimHei.ttf NotoSansMonoCJKsc-Regular.otf; do
    .venv/bin/pyftsubset "$fonts/$f" --text-file="$dest/chars.txt" --layout-features='*' --name-IDs='*' \
        --unicodes="U+0020-00FF,U+2000-206F,U+2100-22FF,U+2500-25FF,U+3000-303F,U+FF00-FFEF" \
        --output-file="$dest/pkgs/mplfonts/fonts/$f"
done
echo '__version__ = "subset"  # benchmarks/gpu_pack.sh: the fonts plate_lib uses, cut to its characters' \
    > "$dest/pkgs/mplfonts/__init__.py"

# the evaluation sets: the sample's test split (by the same hash as everywhere) and the street crops
$py - "$dest/data" <<'EOF'
import shutil, sys
from pathlib import Path
from plate_lib.sources import open_source
sample, out = Path("../shared/data/ccpd2019-sample"), Path(sys.argv[1])
for r in open_source(sample).records("test"):
    (out / "ccpd2019-sample-test" / r.name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(sample / r.name, out / "ccpd2019-sample-test" / r.name)
shutil.copytree("../shared/data/real-crops-lyl8213", out / "real-crops-lyl8213", dirs_exist_ok=True)
EOF
du -sh "$dest"/* | sed 's/^/  /'
