set -u
nvidia-smi --query-gpu=name --format=csv,noheader
dir=/tmp/sets/assembly_b128_snr0.1
python3 -m benchmarks.suite.generate assembly --n 10000 --box 128 --snr 0.1 --outdir $dir --device cuda --data-dir ../shared/data/real > $OUT/gen.log 2>&1 || { echo GEN FAILED; tail -3 $OUT/gen.log; }
python3 benchmarks/results/suite/latent_map_change_2026-12-06g/flat.py $dir $OUT/z_defaults.npy 2>&1 | grep -v Warn
python3 benchmarks/results/suite/latent_map_change_2026-12-06g/flat.py $dir $OUT/z_beta0.01.npy '{"beta": 0.01}' 2>&1 | grep -v Warn
python3 benchmarks/results/suite/latent_map_change_2026-12-06g/flat.py $dir $OUT/z_beta0.03.npy '{"beta": 0.03}' 2>&1 | grep -v Warn
