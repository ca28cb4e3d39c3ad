# why assembly fails: ribosome_motion (one complex) with zdim 8, assembly with zdim 0; one start each
S=$(date +%s)
nvidia-smi --query-gpu=name --format=csv,noheader
for job in ribosome_motion:8 assembly:0; do
SET=${job%%:*}; zd=${job##*:}
dir=/tmp/sets/${SET}_b64_snr0.1
[ -f $dir/particles.star ] || python3 -m benchmarks.suite.generate $SET --n 10000 --box 64 --snr 0.1 --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_$SET.log 2>&1 || tail -5 $OUT/gen_$SET.log
timeout 150 python3 benchmarks/abinit_side.py --outdir /tmp/side_$SET --set $dir --zdim $zd --device cuda --timeout 120 --skip cryodrgn --jsonl $OUT/side1_$SET.jsonl > $OUT/side1_cryonb_${SET}_z$zd.log 2>&1; tail -1 $OUT/side1_cryonb_${SET}_z$zd.log
echo "$SET done at $(( $(date +%s)-S )) s"
done
