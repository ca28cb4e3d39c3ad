# cryonb abinit's CLI defaults (four starts, 30 epochs) with zdim 8 on the suite's adk and assembly, D 64, SNR 0.1
S=$(date +%s)
nvidia-smi --query-gpu=name --format=csv,noheader
for SET in adk assembly; do
dir=/tmp/sets/${SET}_b64_snr0.1
[ -f $dir/particles.star ] || python3 -m benchmarks.suite.generate $SET --n 10000 --box 64 --snr 0.1 --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_$SET.log 2>&1 || tail -5 $OUT/gen_$SET.log
timeout 220 python3 benchmarks/abinit_side.py --outdir /tmp/side_$SET --set $dir --zdim 8 --device cuda --timeout 200 --starts 4 --refine-epochs 11 --skip cryodrgn --jsonl $OUT/side4_$SET.jsonl > $OUT/side4_cryonb_$SET.log 2>&1; tail -1 $OUT/side4_cryonb_$SET.log
echo "$SET done at $(( $(date +%s)-S )) s"
done
