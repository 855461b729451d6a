# Source this on the GPU machine before `bench/moe_kernels.py --peers sonic,liger`: it installs the
# peers from files carried in .whl/ (gitignored) into /tmp/site and puts them on PYTHONPATH.
# .whl/ holds, fetched on the developer machine (bench/RESULTS.md, "v12", lists the versions):
#   sonic_moe 0.1.2.post1, quack_kernels 0.3.11 (0.6.x needs cutlass-dsl >= 4.7; sonic pins 4.4.2),
#   nvidia_cutlass_dsl 4.4.2, apache_tvm_ffi, torch_c_dlpack_ext, liger_kernel 0.8.5 (wheels), and
#   nvidia-cutlass-dsl-libs-base 4.4.2's installed files as a .tar.xz (its 74 MB wheel is over the
#   GPU machine's 64 MiB transfer limit).
# .whl/ is gitignored, so a device call must name it in `carry` (without it sonicmoe does not import).
# SonicMoE's first compile on a fresh machine took 349 s (v12) and over 460 s (v13, QUACK_COMPILE_WORKERS=16):
# give it a call of its own, or most of one.
# Wheel metadata asks for torch <= 2.9.1 (sonic-moe); --no-deps installs it beside the machine's torch.
SITE=${SITE:-/tmp/site}
mkdir -p "$SITE"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
fi
for t in .whl/*.tar.xz; do
    [ -e "$t" ] && tar -xJf "$t" -C "$SITE"
done
# The libs-base wheel adds its python_packages folder through a .pth file, which PYTHONPATH ignores.
export PYTHONPATH="$SITE:$SITE/nvidia_cutlass_dsl/python_packages${PYTHONPATH:+:$PYTHONPATH}"
