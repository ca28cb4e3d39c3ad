python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee $OUT/gpu.txt
export PYTHONPATH=/tmp/site:$PWD
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/core/test_row_adam.py tests/core/test_adam.py tests/core/test_model_sources.py tests/core/test_reconstruct.py > $OUT/tests.log 2>&1; tail -3 $OUT/tests.log
(cd benchmarks && timeout 90 python3 check_graphs.py --latents table --poses table | tee $OUT/check_graphs.txt)
(cd benchmarks && timeout 60 python3 check_graphs.py | tee -a $OUT/check_graphs.txt)
for s in 32 128; do
  timeout 130 python3 benchmarks/abinit_side.py --outdir /tmp/side --n 20000 --box 64 --snr 0.1 --device cuda --timeout 100 --skip cryodrgn --search-images $s --jsonl $OUT/side_search$s.jsonl > $OUT/side_search$s.log 2>&1
  tail -1 $OUT/side_search$s.log | cut -c1-900
done
