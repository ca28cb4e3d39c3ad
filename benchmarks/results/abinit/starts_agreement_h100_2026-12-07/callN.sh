# Two checks of `cryonb abinit` (defaults) without the truth on the GPU at D 64: how far each search epoch turns the poses,
# and whether another start found the kept start's poses; on runs that find them and on one that does not (assembly, one map).
S=$(date +%s)
nvidia-smi --query-gpu=name --format=csv,noheader
for CASE in assembly ribosome_motion assembly_c5 assembly_s1 adk; do
  el=$(( $(date +%s)-S )); if [ $el -gt ${LIMIT:-150} ]; then echo "SKIP $CASE at $el s"; continue; fi
  SET=${CASE%_c5}; SET=${SET%_s1}; dir=/tmp/sets/${SET}_b64_snr0.1
  [ -f $dir/particles.star ] || python3 -m benchmarks.suite.generate $SET --n 10000 --box 64 --snr 0.1 --outdir $dir --device cuda --data-dir .devjob/real > $OUT/gen_$SET.log 2>&1 || tail -5 $OUT/gen_$SET.log
  extra=""; [ $CASE = assembly_c5 ] && extra="--classes 5"; [ $CASE = assembly_s1 ] && extra="--seed 1"
  rm -rf /tmp/sets/ab_$CASE; a=$(date +%s)
  echo "+ cryonb abinit $dir/particles.star -o ab_$CASE --reference $dir/particles.star $extra" | tee -a $OUT/commands.log
  timeout 200 python3 -m cryonb abinit $dir/particles.star -o /tmp/sets/ab_$CASE --reference $dir/particles.star $extra > $OUT/abinit_$CASE.log 2> $OUT/abinit_$CASE.err
  echo "$CASE: rc $? in $(( $(date +%s)-a )) s" | tee -a $OUT/commands.log
  grep -a "turned\|median\|kept" $OUT/abinit_$CASE.log | tail -4; grep -a -i "warn" $OUT/abinit_$CASE.err | head -3
  cp /tmp/sets/ab_$CASE/alignment.json $OUT/alignment_$CASE.json 2>/dev/null
done
echo "all done at $(( $(date +%s)-S )) s"
