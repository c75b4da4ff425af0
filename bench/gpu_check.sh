#!/usr/bin/env bash
# The GPU checks in one go (for a lent GPU machine with torch + transformers installed; writes JSON
# into $OUT, default ./gpu-out). Not a test: numbers for the README's speed section.
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, sys; print(sys.version.split()[0], torch.__version__, transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 bench/speed.py --no-scale > "$OUT/speed_smollm.json" 2> "$OUT/speed_smollm.err"; tail -c 1500 "$OUT/speed_smollm.json"; tail -3 "$OUT/speed_smollm.err"
python3 bench/speed.py --no-scale --shape llama2-7b > "$OUT/speed_7b.json" 2> "$OUT/speed_7b.err"; tail -c 1500 "$OUT/speed_7b.json"; tail -3 "$OUT/speed_7b.err"
python3 bench/placement_gpu.py > "$OUT/placement.json" 2> "$OUT/placement.err"; cat "$OUT/placement.json"; tail -3 "$OUT/placement.err"
