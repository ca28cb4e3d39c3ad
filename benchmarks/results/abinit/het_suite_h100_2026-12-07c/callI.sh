# the user's path: `cryonb abinit` (its defaults, one map) for poses, then the suite's training (cryonb's defaults, zdim 8) on them
S=$(date +%s)
nvidia-smi --query-gpu=name --format=csv,noheader
for SET in ribosome_motion adk; do
  el=$(( $(date +%s)-S )); if [ $el -gt ${LIMIT:-140} ]; then echo "SKIP $SET at $el s"; continue; fi
  dir=/tmp/sets/${SET}_b64_snr0.1
  python3 -m benchmarks.suite.generate $SET --n 10000 --box 64 --snr 0.1 --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_$SET.log 2>&1 || tail -5 $OUT/gen_$SET.log
  a=$(date +%s)
  timeout 150 python3 -m cryonb abinit $dir/particles.star -o /tmp/sets/ab_$SET --reference $dir/particles.star > $OUT/abinit_$SET.log 2>&1; tail -3 $OUT/abinit_$SET.log
  echo "abinit $SET: $(( $(date +%s)-a )) s"; cp /tmp/sets/ab_$SET/alignment.json $OUT/alignment_$SET.json
  mkdir -p /tmp/sets/ab_train_$SET && cp /tmp/sets/ab_$SET/poses.star /tmp/sets/ab_train_$SET/particles.star && ln -sf $dir/truth.npz /tmp/sets/ab_train_$SET/
  timeout 80 python3 -m benchmarks.suite.train /tmp/sets/ab_train_$SET --seed 0 --fsc-particles 0 --jsonl $OUT/ab_then_train.jsonl > $OUT/train_$SET.log 2>&1; tail -1 $OUT/train_$SET.log | cut -c1-400
  echo "$SET done at $(( $(date +%s)-S )) s"
done
