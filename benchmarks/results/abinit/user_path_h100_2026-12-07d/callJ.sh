# The user's path: `cryonb abinit` (its defaults, one map; assembly: --classes 5) for poses, then the
# suite's training (cryonb's defaults, zdim 8) on the poses it wrote.
S=$(date +%s)
nvidia-smi --query-gpu=name --format=csv,noheader
for SET in ribosome_motion adk assembly; do
  el=$(( $(date +%s)-S )); if [ $el -gt ${LIMIT:-380} ]; then echo "SKIP $SET at $el s"; continue; fi
  dir=/tmp/sets/${SET}_b64_snr0.1
  python3 -m benchmarks.suite.generate $SET --n 10000 --box 64 --snr 0.1 --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_$SET.log 2>&1 || tail -5 $OUT/gen_$SET.log
  extra=""; [ $SET = assembly ] && extra="--classes 5"
  a=$(date +%s)
  echo "+ cryonb abinit $dir/particles.star -o ab_$SET --reference $dir/particles.star $extra" | tee -a $OUT/commands.log
  timeout 150 python3 -m cryonb abinit $dir/particles.star -o /tmp/sets/ab_$SET --reference $dir/particles.star $extra > $OUT/abinit_$SET.log 2>&1; tail -3 $OUT/abinit_$SET.log
  echo "abinit $SET: $(( $(date +%s)-a )) s" | tee -a $OUT/commands.log; cp /tmp/sets/ab_$SET/alignment.json $OUT/alignment_$SET.json
  if [ $SET = assembly ]; then
    python3 - $dir /tmp/sets/ab_$SET <<'PY' | tee $OUT/classes_$SET.txt
import sys, numpy as np
from sklearn.metrics import adjusted_rand_score
from benchmarks.suite.metrics import load_truth
t = load_truth(f"{sys.argv[1]}/truth.npz"); c = np.load(f"{sys.argv[2]}/classes.npy"); keep = t.keep()
print("classes ARI (junk left out)", round(adjusted_rand_score(t.labels[keep], c[keep]), 3))
print("rows: true class (junk last); columns: found class"); print(np.array([np.bincount(c[t.labels == s], minlength=5) for s in np.unique(t.labels)]))
PY
  fi
  mkdir -p /tmp/sets/ab_train_$SET && cp /tmp/sets/ab_$SET/poses.star /tmp/sets/ab_train_$SET/particles.star && ln -sf $dir/truth.npz /tmp/sets/ab_train_$SET/
  echo "+ python -m benchmarks.suite.train ab_train_$SET --seed 0 --fsc-particles 0" >> $OUT/commands.log
  timeout 80 python3 -m benchmarks.suite.train /tmp/sets/ab_train_$SET --seed 0 --fsc-particles 0 --jsonl $OUT/ab_then_train.jsonl > $OUT/train_$SET.log 2>&1; tail -1 $OUT/train_$SET.log | cut -c1-400
  echo "$SET done at $(( $(date +%s)-S )) s"
done
