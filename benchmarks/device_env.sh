# Source on the device machine from the repo root: installs carried wheels into /tmp/site and
# exposes the repo as the `gsvd` package through symlinks (no build step needed there).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/*.tar.gz
mkdir -p /tmp/pkg/gsvd
cp gsvd/*.py /tmp/pkg/gsvd/
for d in engine daemon clients trainer trt_build; do ln -sfn "$PWD/$d" "/tmp/pkg/gsvd/$d"; done
ln -sfn "$PWD/proto/gsvd/v1" /tmp/pkg/gsvd/v1
export PYTHONPATH=/tmp/pkg:/tmp/site
