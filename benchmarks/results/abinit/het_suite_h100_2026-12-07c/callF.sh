# heterogeneous pose search speed, then heterogeneous ab initio (zdim 8) on the suite's SET at D 64, SNR 0.1: cryonb, then cryoDRGN 4.3.1
S=$(date +%s); SET=${SET:-adk}; DRGN_T=${DRGN_T:-280}
nvidia-smi --query-gpu=name --format=csv,noheader
if [ -n "${SPEED:-}" ]; then
timeout 150 python3 benchmarks/abinit_speed.py --zdims 8 --batches 16 64 --map-grids 2 0 --repeats 2 > $OUT/speed.jsonl 2> $OUT/speed.err
python3 -c "
import json,sys
for l in open('$OUT/speed.jsonl'):
    r=json.loads(l); print({k: r.get(k) for k in ('decoder','zdim','batch','map_grid','poses_per_s','seconds_per_batch','decoder_points_per_s','peak_gpu_mib','error')})"
tail -3 $OUT/speed.err; echo "speed done at $(( $(date +%s)-S )) s"
fi
dir=/tmp/sets/${SET}_b64_snr0.1
python3 -m benchmarks.suite.generate $SET --n 10000 --box 64 --snr 0.1 --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_$SET.log 2>&1 || tail -5 $OUT/gen_$SET.log
echo "generated at $(( $(date +%s)-S )) s"
for zd in ${NB_ZDIMS:-8}; do
timeout 200 python3 benchmarks/abinit_side.py --outdir /tmp/side_$SET --set $dir --zdim $zd --device cuda --timeout ${NB_T:-120} --skip cryodrgn --jsonl $OUT/side_$SET.jsonl > $OUT/side_cryonb_${SET}_z$zd.log 2>&1; tail -2 $OUT/side_cryonb_${SET}_z$zd.log
done
echo "cryonb done at $(( $(date +%s)-S )) s"
timeout $(( DRGN_T + 60 )) python3 benchmarks/abinit_side.py --outdir /tmp/side_$SET --set $dir --zdim 8 --device cuda --drgn-python python3 --timeout $DRGN_T --skip cryonb --jsonl $OUT/side_$SET.jsonl > $OUT/side_drgn_$SET.log 2>&1; tail -2 $OUT/side_drgn_$SET.log
cp /tmp/side_$SET/commands.log $OUT/commands_$SET.log 2>/dev/null; cp /tmp/side_$SET/cryodrgn/run.log $OUT/cryodrgn_run_$SET.log 2>/dev/null; cp /tmp/side_$SET/cryodrgn/config.yaml $OUT/cryodrgn_config_$SET.yaml 2>/dev/null
echo "all done at $(( $(date +%s)-S )) s"
