cwlVersion: v1.2
class: CommandLineTool
label: train
doc: One process; its yprov4ml run attaches itself to this step (the step's environment names it).
inputs:
  python: string
  script: File
  data: File
  prov_dir: string
  epochs: int
  fail_rank: int
arguments: [$(inputs.python), $(inputs.script.path), --data, $(inputs.data.path), --model-out, model.pt,
            --epochs, $(inputs.epochs), --samples, "1024", --save-dir, $(inputs.prov_dir), --experiment, train,
            --fail-rank, $(inputs.fail_rank)]
outputs:
  model: {type: File, outputBinding: {glob: model.pt}}
