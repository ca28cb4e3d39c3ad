python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt
for tree in old new; do
  dir=$PWD; [ $tree = old ] && dir=$PWD/.devjob/old
  (cd $dir && PYTHONPATH=/tmp/site:$dir timeout 150 python3 benchmarks/abinit_side.py --outdir /tmp/side_$tree --n 20000 --box 64 --snr 0.1 --device cuda --timeout 70 --skip cryodrgn --jsonl $OUT/side_$tree.jsonl > $OUT/side_$tree.log 2>&1)
done
cat $OUT/side_*.jsonl
