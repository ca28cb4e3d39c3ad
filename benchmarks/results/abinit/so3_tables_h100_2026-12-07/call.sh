python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv > $OUT/gpu.txt
for tree in new old; do
  dir=$PWD; [ $tree = old ] && dir=$PWD/.devjob/old
  (cd $dir && PYTHONPATH=/tmp/site:$dir timeout 150 python3 benchmarks/abinit_speed.py --box 64 --width 256 --batches 32 128 --zdims 0 --repeats 5 --map-grids 2 0 > $OUT/speed_$tree.jsonl 2> $OUT/speed_$tree.err)
done
timeout 200 python3 benchmarks/abinit_side.py --outdir /tmp/side_new --n 20000 --box 64 --snr 0.1 --device cuda --timeout 75 --skip cryodrgn --profile $OUT/side_new.prof --jsonl $OUT/side_new.jsonl > $OUT/side_new.log 2>&1
python3 -c "import pstats,sys; p=pstats.Stats(sys.argv[1]); p.sort_stats('tottime').print_stats(30); p.sort_stats('cumulative').print_stats(45)" $OUT/side_new.prof > $OUT/side_new.txt 2>&1
cat $OUT/speed_*.jsonl $OUT/side_*.jsonl; tail -3 $OUT/*.err
