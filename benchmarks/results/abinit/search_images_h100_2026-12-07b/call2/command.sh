python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee $OUT/gpu.txt
export PYTHONPATH=/tmp/site:$PWD
timeout 260 python3 benchmarks/abinit_side.py --outdir /tmp/side4 --n 20000 --box 64 --snr 0.1 --device cuda --timeout 230 --skip cryodrgn --starts 4 --jsonl $OUT/side_starts4.jsonl > $OUT/side_starts4.log 2>&1
tail -1 $OUT/side_starts4.log | cut -c1-900
timeout 200 python3 benchmarks/abinit_side.py --outdir /tmp/side128 --n 8000 --box 128 --snr 0.1 --device cuda --timeout 150 --skip cryodrgn --starts 4 --jsonl $OUT/side_b128_starts4.jsonl > $OUT/side_b128_starts4.log 2>&1
tail -1 $OUT/side_b128_starts4.log | cut -c1-900
