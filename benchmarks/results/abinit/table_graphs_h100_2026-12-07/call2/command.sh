python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee $OUT/gpu.txt
export PYTHONPATH=/tmp/site:$PWD
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/core/test_row_adam.py tests/core/test_adam.py tests/core/test_model_sources.py > $OUT/tests.log 2>&1; tail -3 $OUT/tests.log
bench() {  # tree, then bench_train options
  local dir=$PWD; [ $1 = old ] && dir=$PWD/.devjob/old; shift
  (cd $dir && PYTHONPATH=/tmp/site:$dir timeout 60 python3 benchmarks/bench_train.py --box 64 --width 256 --particles 10000 --epochs 1 --warmup 1 --device cuda "$@")
}
for b in 16 32; do
  echo "new b$b z0 $(bench new --batch $b --zdim 0 --poses table)" | tee -a $OUT/steps.txt
  echo "new-known b$b z0 $(bench new --batch $b --zdim 0)" | tee -a $OUT/steps.txt
done
for tree in old new; do
  dir=$PWD; [ $tree = old ] && dir=$PWD/.devjob/old
  (cd $dir && PYTHONPATH=/tmp/site:$dir timeout 130 python3 benchmarks/abinit_side.py --outdir /tmp/side_$tree --n 20000 --box 64 --snr 0.1 --device cuda --timeout 70 --skip cryodrgn --jsonl $OUT/side_$tree.jsonl > $OUT/side_$tree.log 2>&1)
  tail -2 $OUT/side_$tree.log
done
cat $OUT/side_*.jsonl
