python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee $OUT/gpu.txt
export PYTHONPATH=/tmp/site:$PWD
timeout 420 python3 benchmarks/abinit_side.py --outdir /tmp/side --n 20000 --box 64 --snr 0.1 --device cuda --drgn-python python3 --timeout 300 --jsonl $OUT/side.jsonl > $OUT/side.log 2>&1
cp /tmp/side/commands.log $OUT/ 2>/dev/null; cp /tmp/side/cryodrgn/run.log $OUT/cryodrgn_run.log 2>/dev/null; cp /tmp/side/cryodrgn/config.yaml $OUT/cryodrgn_config.yaml 2>/dev/null
cut -c1-700 $OUT/side.jsonl
timeout 150 python3 benchmarks/abinit_side.py --outdir /tmp/side --n 20000 --box 64 --snr 0.1 --device cuda --timeout 130 --skip cryodrgn --starts 4 --refine-epochs 11 --jsonl $OUT/side_cli_defaults.jsonl > $OUT/side_cli_defaults.log 2>&1
cut -c1-700 $OUT/side_cli_defaults.jsonl
