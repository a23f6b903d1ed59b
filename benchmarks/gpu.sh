#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA machine where plate_lib and its [report] extra import (a machine without
# network or Jupyter: benchmarks/gpu_pack.sh packs what it needs):
#
#     bash benchmarks/gpu.sh OUT SAMPLE DEV        e.g. bash benchmarks/gpu.sh /tmp/gpu ../shared/data/ccpd2019-sample
#                                                       ../shared/data/real-crops-lyl8213
#
# 1. bench:  benchmarks/bench.py --device cuda                    → OUT/results-<gpu>.json
# 2. report: the three notebooks on profiles/gpu.yaml (synthetic plates, SAMPLE and DEV as eval sets)
#                                                                 → OUT/report-<gpu>.tar.gz (HTML, notebooks, run files)
# 3. seed:   seed_crnn at its own 128×400 beside the default model at 48×144, same plates and epochs
#            (benchmarks/accuracy.py)                             → OUT/accuracy-<gpu>.json, OUT/seed-runs-<gpu>.tar.gz
# <gpu> is the device's name in lower case (nvidia-h200). STAGES="bench seed" runs some; each stage has a time
# limit (BENCH_S, REPORT_S, SEED_S seconds) so that one stuck stage leaves time for the others. Every command
# and its output go to OUT/log.txt; a failed stage is reported and the next one runs.
# REPORT_TRAIN_S / SEED_TRAIN_S (seconds, optional): fewer epochs than the recipe's where the training rate that
# bench measured says they would not fit in that time (a lent GPU's minutes are few); the log says so.
# A dry run on a CPU: DEVICE=cpu GPU_NAME=cpu REPORT_SET="synth.n_train=2000 training.epochs=1"
# SEED_ARGS="--models small_crnn_lite --epochs 1" bash benchmarks/gpu.sh /tmp/gpu-dry SAMPLE DEV
set -u
out=${1:?usage: bash benchmarks/gpu.sh OUT SAMPLE DEV}
sample=${2:?the CCPD2019 photo folder (an eval set, and the real set of accuracy.py)}
dev=${3:?the crops folder of real-crops-lyl8213 (an eval set)}
stages=${STAGES:-bench report seed}
mkdir -p "$out"
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
gpu=$(echo "${GPU_NAME:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)}" | tr 'A-Z ' 'a-z-')
log=$out/log.txt
export PYTHONUNBUFFERED=1

stage() {  # stage NAME LIMIT_S COMMAND…: run, time and log one stage
    local name=$1 limit=$2; shift 2
    case " $stages " in *" $name "*) ;; *) return 0 ;; esac
    local t0=$SECONDS
    echo "== $name: $* (limit ${limit} s)" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
}

fit_epochs() {  # fit_epochs MODEL SECONDS PLATES MOST: MOST, or the fewer epochs of PLATES that bench's rate fits
    $py -c '
import json, sys
path, model, seconds, plates, most = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
try:
    rate = json.load(open(path))["models"][model]["train_plates_per_s"]
except (OSError, KeyError, ValueError):
    print(most)
    sys.exit()
fit = max(1, min(most, int(seconds * 0.8 * rate / plates)))  # 0.8: validation, loading and logging on top
print(fit)
print(f"fit_epochs: {model} at {rate:.0f} plates/s, {seconds:.0f} s, {plates} plates: {fit} of {most} epochs",
      file=sys.stderr)
' "$out/results-$gpu.json" "$@"
}

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true; nproc
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } >>"$log" 2>&1

stage bench "${BENCH_S:-150}" $py benchmarks/bench.py --device "${DEVICE:-cuda}" --out "$out/results-$gpu.json"

report_epochs=20  # profiles/gpu.yaml: 20 epochs over 200,000 plates (170,000 of them train)
[ -n "${REPORT_TRAIN_S:-}" ] && report_epochs=$(fit_epochs small_crnn_lite "$REPORT_TRAIN_S" 170000 20 2>>"$log")
stage report "${REPORT_S:-330}" $py -m plate_lib report --profile profiles/gpu.yaml --set run.name=gpu \
    --set data.synthetic_path=data/synthetic-gpu.zip --set "data.eval_sets=[$sample,$dev]" \
    --set training.epochs="$report_epochs" $(for s in ${REPORT_SET:-}; do echo --set "$s"; done)
case " $stages " in *" report "*)
    pkill -f ipykernel_launcher  # a timed-out report leaves its kernel (a session of its own) running
    files=$(ls reports/*.html reports/*.ipynb runs/gpu/{metrics.csv,timings.csv,summary.json,eval.json,train.log,config.yaml,env.json} \
            runs/gpu/eval-*.csv 2>/dev/null)
    [ -n "$files" ] && tar czf "$out/report-$gpu.tar.gz" $files ;;
esac

seed_epochs=5  # accuracy.py's recipe: 5 epochs over the 17,007 training plates of cfg.yaml's synthetic zip
[ -n "${SEED_TRAIN_S:-}" ] && seed_epochs=$(fit_epochs seed_crnn "$SEED_TRAIN_S" 17007 5 2>>"$log")
stage seed "${SEED_S:-240}" $py benchmarks/accuracy.py --models seed_crnn small_crnn_lite --size 48x144 seed_crnn=128x400 \
    --epochs "$seed_epochs" --real "$sample" --out "$out/accuracy-$gpu.json" ${SEED_ARGS:-}
case " $stages " in *" seed "*)
    files=$(ls runs/acc-*/{summary.json,timings.csv,metrics.csv,train.log} 2>/dev/null)
    [ -n "$files" ] && tar czf "$out/seed-runs-$gpu.tar.gz" $files ;;
esac
date -u >>"$log"
