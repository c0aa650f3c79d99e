#!/usr/bin/env bash
# Runs the CWL pipeline with cwltool, recorded at both levels; leaves under OUT the workflow record
# (OUT/provenance: events.jsonl, workflow.json, bundle.prov.json, graph, crate/), the yprov4ml runs
# (OUT/prov) and the results (OUT/results). Installs nothing: run it from the project's environment, with
# cwltool in an environment of its own (it pins prov 1.5.1): CWLTOOL=/path/to/cwltool, or cwltool on PATH.
#
#   examples/cwl/run.sh OUT [EPOCHS] [FAIL_RANK]      # FAIL_RANK 0: the training step fails
set -euo pipefail
out=$(mkdir -p "${1:?usage: run.sh OUT [EPOCHS] [FAIL_RANK]}" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
python=$(command -v python)
cat > "$out/job.yml" <<JOB
python: $python
steps_script: {class: File, path: $here/../pipeline_steps.py}
train_script: {class: File, path: $here/../distributed_train.py}
prov_dir: $out/prov
epochs: ${2:-2}
fail_rank: ${3:--1}
JOB
exec yprov4wfs-bridge cwl "$here/pipeline.cwl" "$out/job.yml" --directory "$out/provenance" \
    ${CWLTOOL:+--cwltool "$CWLTOOL"} --metadata "$here/../yprov4ml.toml" -- --outdir "$out/results"
