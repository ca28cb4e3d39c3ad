python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $OUT/pip.log 2>&1
export PYTHONPATH=/tmp/site:$PWD
CONDS="64:0.1" SUITE_SETS="ribosome_motion assembly" SEEDS="0" LIMIT=200 bash .devjob/suite.sh
CONDS="128:0.1" SUITE_SETS="assembly" SEEDS="0" LIMIT=380 bash .devjob/suite.sh
rm -rf $OUT/z
for f in $OUT/cryonb_*.jsonl; do python3 -c "
import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l); e=r['epochs'][-1]; print(sys.argv[1].split('/')[-1], r['set'], r.get('wall_s'), e['metrics'], r.get('fsc_auc_mean', r.get('maps')))
" $f; done
