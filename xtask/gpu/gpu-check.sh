#!/usr/bin/env bash
# Runs on the GPU machine, from the checkout's root, after `cargo xtask gpu-check` packed .gpu/:
#   bash .gpu/gpu-check.sh 2>&1 | tee gpu-check.log
# Everything issue 4 asks to see from a real GPU, in one go: the machine, `rnn devices`, the
# CUDA tests, `rnn check --device cuda` on every fixture, the cross-device check and the dtype
# error table. It prints; docs/gpu-check.md is what it printed.
set -u
root=$(pwd)
gpu=$root/.gpu
rnn=$gpu/rnn

# The CUDA 13 runtime libraries (cudart, cublas, curand, nvrtc): wherever this machine keeps
# them; the driver's libcuda.so.1 is found by the system.
lib=$(find /opt /usr/local /usr/lib -name 'libcublas.so.13' -not -path '*/stubs/*' 2>/dev/null | head -n1)
[ -n "$lib" ] && export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

section() { printf '\n## %s\n\n```\n$ %s\n' "$1" "$2"; }
end() { printf '```\n'; }

echo "# GPU check"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "- host: $(uname -srm)"
echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -n1)"
echo "- CUDA libraries: ${lib:-not found}"

section "Devices" "rnn devices; rnn devices --format json"
"$rnn" devices; "$rnn" devices --format json
end

section "CUDA tests (crates/cli/tests/devices.rs, built with --features cuda)" "devices-test"
RNN_BIN=$rnn RNN_REPO_ROOT=$root "$gpu/devices-test" --nocapture 2>&1 | tail -n 20
end

section "Every fixture on CUDA, default tolerances" "rnn check FIXTURE --device cuda"
for f in "$root"/tests/fixtures/*.safetensors; do
  args=""
  case $(basename "$f") in torch_l3_bidir_relu_batch_first_h0*) args="--nonlinearity relu --batch-first" ;; esac
  out=$("$rnn" check "$f" $args --device cuda 2>&1); rc=$?
  echo "exit $rc  $(basename "$f")  $(echo "$out" | tail -n1)"
  [ $rc -eq 0 ] || echo "$out"
done
end

section "CPU against CUDA (f32)" "rnn check FIXTURE --devices cpu,cuda"
for f in "$root"/models/seed/article.safetensors "$root"/tests/fixtures/*.safetensors; do
  args=""
  case $(basename "$f") in torch_l3_bidir_relu_batch_first_h0*) args="--nonlinearity relu --batch-first" ;; esac
  echo "$(basename "$f"): $("$rnn" check "$f" $args --devices cpu,cuda 2>&1 | grep divergence | awk '{print $5, $8}' | sort -g -k2 | tail -n1)"
done
end

section "Error of each dtype against the float64 references" "xtask/gpu/dtype-table.sh"
bash "$gpu/dtype-table.sh" "$rnn" "$root" cuda
bash "$gpu/dtype-table.sh" "$rnn" "$root" cpu
end

section "Timing (one tanh layer, f32)" "rnn bench --device cuda"
for s in "1 2 3 5" "4 2 3 5" "64 100 128 128" "1 1000 64 64" "256 50 256 512"; do
  set -- $s
  "$rnn" bench --device cuda --batch "$1" --seq "$2" --input-size "$3" --hidden-size "$4" --runs 20 2>&1 | tail -n1
done
end
