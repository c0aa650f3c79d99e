#!/usr/bin/env cwl-runner
# make data → train (a small torch model, recorded by yprov4ml) → evaluate, recorded at both levels:
#
#   yprov4wfs-bridge cwl pipeline.cwl job.yml --directory OUT/provenance -- --outdir OUT/results
#
# (run.sh OUT writes job.yml and does exactly this). Each step runs its command with the interpreter
# named by `python`, so yprov4ml is imported from the project's environment, not cwltool's.
cwlVersion: v1.2
class: Workflow
label: make data, train, evaluate
doc: A synthetic regression task, a small torch model trained on it, and its test error.
requirements:
  StepInputExpressionRequirement: {}
inputs:
  python: string
  steps_script: File
  train_script: File
  prov_dir: string
  epochs: int
  fail_rank:
    type: int
    default: -1
outputs:
  model:
    type: File
    outputSource: train/model
  report:
    type: File
    outputSource: evaluate/report
steps:
  make_data:
    run: make_data.cwl
    in: {python: python, script: steps_script}
    out: [raw]
  train:
    run: train.cwl
    in: {python: python, script: train_script, data: make_data/raw, prov_dir: prov_dir, epochs: epochs,
         fail_rank: fail_rank}
    out: [model]
  evaluate:
    run: evaluate.cwl
    in: {python: python, script: steps_script, model: train/model, test: make_data/raw, prov_dir: prov_dir}
    out: [report]
