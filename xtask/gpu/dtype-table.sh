#!/usr/bin/env bash
# The measured error of each dtype against the frameworks' float64 results, on one device:
# the worst max-abs error over every fixture that carries float64 references (`*_f64`).
# Usage: dtype-table.sh RNN_BINARY REPO_ROOT DEVICE
set -u
rnn=$1 root=$2 device=$3
printf '| dtype | device | fixtures | worst max abs error vs float64 | worst case |\n|---|---|---|---|---|\n'
for dtype in f64 f32 f16 bf16; do
  worst=0 where="" count=0
  for f in "$root"/tests/fixtures/*.safetensors; do
    args=""
    case $(basename "$f") in torch_l3_bidir_relu_batch_first_h0*) args="--nonlinearity relu --batch-first" ;; esac
    # --atol 1e9 always passes: we only read the errors.
    out=$("$rnn" check "$f" $args --device "$device" --dtype "$dtype" --atol 1e9 --rtol 0 --float64-reference 2>&1) || { echo "FAILED: $f $dtype: $out" >&2; continue; }
    echo "$out" | grep -q '_f64 ' || continue
    count=$((count + 1))
    for e in $(echo "$out" | grep -oE 'max abs [0-9.e+-]+' | awk '{print $3}'); do
      if awk -v a="$e" -v b="$worst" 'BEGIN{exit !(a+0 > b+0)}'; then worst=$e where=$(basename "$f" .safetensors); fi
    done
  done
  printf '| %s | %s | %s | %s | %s |\n' "$dtype" "$device" "$count" "$worst" "$where"
done
