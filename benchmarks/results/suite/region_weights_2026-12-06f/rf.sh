# Region features as encoder inputs: defaults (regions=0) against regions=32, each run alone on the GPU.
#   TASKS="assembly:128:0.1 assembly:64:0.1 ..." REGIONS="0 32" SEEDS=0 bash .devjob/rf.sh
set -u
START=$(date +%s); LIMIT=${LIMIT:-540}
nvidia-smi --query-gpu=name --format=csv,noheader
mkdir -p $OUT/z
for task in $TASKS; do
  s=${task%%:*}; rest=${task#*:}; box=${rest%%:*}; snr=${rest##*:}
  dir=/tmp/sets/${s}_b${box}_snr${snr}
  [ -f $dir/truth.npz ] || python3 -m benchmarks.suite.generate $s --n 10000 --box $box --snr $snr --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_${s}_b${box}_snr${snr}.log 2>&1 || { echo GEN FAILED; tail -3 $OUT/gen_${s}_b${box}_snr${snr}.log; continue; }
  [ $s = assembly ] && [ -n "${PROBE:-}" ] && python3 .devjob/rf_probe.py $dir 2>&1 | grep -v Warn | tail -2
  for seed in ${SEEDS:-0}; do
    for v in ${VARIANTS:-d:regions=0 r32:regions=32}; do
      r=${v%%:*}; sets=""; for kv in $(echo ${v#*:} | tr ',' ' '); do sets="$sets --set $kv"; done
      el=$(( $(date +%s) - START )); est=$([ "$box" = 128 ] && echo 90 || echo 35)
      if [ $(( el + est )) -gt "$LIMIT" ]; then echo "SKIP $s b$box snr$snr r$r seed $seed at $el s"; continue; fi
      tag=${s}_b${box}_snr${snr}_r${r}_s${seed}
      python3 -m benchmarks.suite.train $dir --seed $seed $sets --jsonl $OUT/rf_b${box}_snr${snr}.jsonl --results $OUT/z/$tag > $OUT/train_$tag.log 2>&1 || { echo TRAIN FAILED $tag; tail -5 $OUT/train_$tag.log; }
      python3 -c "import json,sys; r=[json.loads(l) for l in open('$OUT/rf_b${box}_snr${snr}.jsonl')][-1]; print('$tag', r['wall_s'], r['setup_s'], {k: v for k, v in r['final'].items() if k in ('gmm_ari','gmm_ari_seeds','kmeans_ari','neighbourhood','rare_recall','spearman_pc1','knn_r2','fsc_auc_mean')})"
      [ $s = assembly ] && python3 -m benchmarks.suite.rare_probe $OUT/z/$tag/z.npy 2>&1 | tail -1
      echo "DONE $tag at $(( $(date +%s) - START )) s"
    done
  done
done
