#!/usr/bin/env bash
# The benchmark suite on one GPU, cryonb and cryoDRGN 4.3.1 side by side, in one run:
#   benchmarks/suite/run_suite.sh OUT [SYSTEMS]        SYSTEMS: "cryonb cryodrgn" (default)
# Environment: SETS (default "adk ribosome_motion assembly"), N (10000), BOX (64), SNR (0.1),
# EPOCHS (unset: cryoDRGN's default 20 and cryonb's default schedule; set: both train that many),
# SEEDS (training seeds, "0"; the report gives the mean and spread of several), DATA (folder of
# generated sets, default .suite-runs), REAL (the real maps, default ../shared/data/real),
# CRYONB_VARIANTS: extra cryonb
# runs, ';'-separated lists of TrainConfig overrides (e.g. "batch_size=32 lr=2e-4;epochs=16 lr=3e-4";
# a variant that sets epochs trains that many).
# Writes OUT/suite.jsonl (one record per system, set and variant) and OUT/<system>-<set>.log.
set -euo pipefail
out=${1:?usage: run_suite.sh OUT [SYSTEMS]}; systems=${2:-cryonb cryodrgn}
sets=${SETS:-adk ribosome_motion assembly}; n=${N:-10000}; box=${BOX:-64}; snr=${SNR:-0.1}; epochs=${EPOCHS:-}; seeds=${SEEDS:-0}
data=${DATA:-.suite-runs}; device=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
mkdir -p "$out"
for s in $sets; do
  dir=$data/${s}_n${n}_b${box}_snr${snr}
  [ -f "$dir/truth.npz" ] || python3 -m benchmarks.suite.generate "$s" --n "$n" --box "$box" --snr "$snr" --outdir "$dir" --device "$device" ${REAL:+--data-dir "$REAL"} 2>&1 | grep -v '%|' || true
  for seed in $seeds; do
    tag=$([ "$seed" = 0 ] && echo "$s" || echo "$s-seed$seed")
    for system in $systems; do
      case $system in
        cryonb)
          python3 -m benchmarks.suite.train "$dir" ${epochs:+--epochs "$epochs"} --seed "$seed" --jsonl "$out/suite.jsonl" --refine --results "$out/cryonb-$tag" 2>&1 | tee -a "$out/cryonb-$tag.log" | tail -1 | cut -c1-600
          IFS=';' read -ra variants <<< "${CRYONB_VARIANTS:-}"
          for v in "${variants[@]}"; do
            args=(); for kv in $v; do args+=(--set "$kv"); done
            [[ " $v " == *" epochs="* || -z $epochs ]] || args+=(--epochs "$epochs")  # a variant's own schedule sets its length
            python3 -m benchmarks.suite.train "$dir" --seed "$seed" --jsonl "$out/suite.jsonl" --system "cryonb [$v]" "${args[@]}" 2>&1 | tee -a "$out/cryonb-$tag.log" | tail -1 | cut -c1-600
          done ;;
        cryodrgn)
          python3 -m benchmarks.suite.drgn "$dir" -n "${epochs:-20}" --seed "$seed" --score-every 5 --jsonl "$out/suite.jsonl" --results "$out/cryodrgn-$tag" 2>&1 | tee -a "$out/cryodrgn-$tag.log" | tail -1 | cut -c1-600 ;;
      esac
    done
  done
done
