# Issue 13's whole table on a lent GPU (H200: 16 cores, one GPU): every family of bench_matchzoo.py on SciFact and
# NFCorpus, and bench_rerank.py's two cross-encoders (SciFact at a GPU's budget, NFCorpus's two-stage recipe), as
# parallel processes that share the GPU; each stops at LIMIT seconds, keeping the runs it finished.
#
#   here:   .venv/bin/python benchmarks/device/pack.py scifact nfcorpus   (and PyStemmer's wheel in .whl/)
#   device: REV=$(git rev-parse --short HEAD) LIMIT=440 bash benchmarks/device/matchzoo_all.sh
#           (carry .gpu and .whl; timeout 540 s); $OUT gets scifact.tgz, nfcorpus.tgz (runs, timing.json) and
#           rest.tgz (logs, per-process reports, the cross-encoders' runs under pack/)
#   here:   tar xzf scifact.tgz -C W; tar xzf nfcorpus.tgz -C W; tar xzf rest.tgz -C R; then bench_matchzoo.py
#           --workdir W --report-only with the same --collections/--families/--epochs flags as below and
#           --cross-run scifact=R/pack/r1/<run>.trec (nfcorpus: R/pack/r2/...): one Holm-corrected table per collection
set -u
T0=$(date +%s)
pip install --no-deps -q .whl/*.whl 2>&1 | tail -1
python3 benchmarks/device/unpack.py
export PYTHONPATH=/tmp/site:$PWD RANKSTACK_DATA=$PWD/.gpu/data RANKSTACK_REVISION=$REV NUMBA_NUM_THREADS=2
W=/tmp/w; L=/tmp/logs; mkdir -p $W $L /tmp/rep
python3 - <<'PY'
import sys; sys.path.insert(0, "benchmarks")
from pathlib import Path
from _common import bm25_index
from rankstack.data import load_collection
for name in ("scifact", "nfcorpus"):
    col = load_collection(Path(".gpu/data") / name)
    index = bm25_index(col.corpus, Path("/tmp/w") / name / "bm25")
    print(name, len(index.bm25(k=100)(col.queries_for("test"))))
PY
echo "prep $(( $(date +%s) - T0 )) s"; nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
MZ="timeout ${LIMIT:-430} python3 benchmarks/bench_matchzoo.py --workdir $W --threads 1"
SF="--collections scifact --epochs 2 --bert-epochs 3 --prop-docs 2000 --cascade-keep 0.8 0.6 0.4 0.2 --cascade-protect 10"
NF="--collections nfcorpus --epochs 1 --bert-epochs 1 --max-examples 4000 --positive-depth 100 --max-per-query 8"
i=0
for fams in "knrm conv-knrm drmm matchpyramid" "duet dssm tkl" "cross cedr-knrm cedr-vanilla" "cedr-drmm cedr-pacrr" "cascade prop"; do
  i=$((i+1)); $MZ $SF --families $fams --output /tmp/rep/s$i.md > $L/s$i.log 2>&1 &
done
i=0
for fams in "knrm conv-knrm" "drmm matchpyramid" "duet dssm tkl" "cross cedr-vanilla" "cedr-knrm" "cedr-drmm" "cedr-pacrr" "cascade prop"; do
  i=$((i+1)); $MZ $NF --families $fams --output /tmp/rep/n$i.md > $L/n$i.log 2>&1 &
done
RR="timeout ${LIMIT:-430} python3 benchmarks/bench_rerank.py --systems mono --variant-backend torch --query-max-length 64 --max-length 256"
$RR --collections scifact --epochs 10 --batch-size 16 --negatives 15 --lr 5e-5 --negative-depth 100 --train-max-length 256 \
  --workdir /tmp/r1 --output /tmp/rep/r1.md > $L/r1.log 2>&1 &
( $RR --collections nfcorpus --epochs 1 --batch-size 4 --negatives 7 --lr 4e-5 --negative-depth 100 --positive-depth 100 \
    --max-per-query 4 --max-examples 5000 --train-max-length 192 --save-every 0 --workdir /tmp/r2a --output /tmp/rep/r2a.md \
  && $RR --collections nfcorpus --epochs 1 --batch-size 4 --negatives 7 --lr 2e-5 --negative-depth 100 --positive-depth 100 \
    --max-per-query 8 --max-examples 5000 --train-max-length 192 --save-every 0 --base-model /tmp/r2a/nfcorpus/model-mono/final \
    --workdir /tmp/r2b --output /tmp/rep/r2b.md ) > $L/r2.log 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; uptime
wait
echo "all done $(( $(date +%s) - T0 )) s"
mkdir -p /tmp/pack/r1 /tmp/pack/r2
cp /tmp/r1/scifact/runs/*.trec /tmp/pack/r1/ 2>/dev/null; cp /tmp/r2b/nfcorpus/runs/*.trec /tmp/pack/r2/ 2>/dev/null
cd $W && tar czf $OUT/scifact.tgz $(find scifact -name '*.trec' -o -name timing.json | grep -v bm25/) && \
  tar czf $OUT/nfcorpus.tgz $(find nfcorpus -name '*.trec' -o -name timing.json | grep -v bm25/)
cd /tmp && tar czf $OUT/rest.tgz rep logs pack
ls -la $OUT; for f in $L/*.log; do echo "== $f"; grep -v "it/s\]$" $f | tr '\r' '\n' | grep -v "it/s\]$\|s/it\]$" | tail -4 | cut -c1-300; done
