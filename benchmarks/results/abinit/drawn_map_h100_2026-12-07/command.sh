export PYTHONPATH=/tmp/site:$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt
timeout 110 python3 benchmarks/abinit_speed.py --repeats 2 > $OUT/speed.jsonl 2> $OUT/speed.err
for g in 2 0; do timeout 195 python3 benchmarks/abinit_side.py --outdir /tmp/side$g --n 20000 --box 64 --snr 0.1 --device cuda --timeout 150 --skip cryodrgn --map-grid $g --jsonl $OUT/side_grid$g.jsonl > $OUT/side_grid$g.log 2>&1; done
cat $OUT/gpu.txt $OUT/speed.jsonl $OUT/side_grid*.jsonl; tail -n 3 $OUT/speed.err
