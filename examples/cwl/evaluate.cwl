cwlVersion: v1.2
class: CommandLineTool
label: evaluate
inputs:
  python: string
  script: File
  model: File
  test: File
  prov_dir: string
arguments: [$(inputs.python), $(inputs.script.path), evaluate, $(inputs.model.path), $(inputs.test.path),
            report.txt, --save-dir, $(inputs.prov_dir)]
outputs:
  report: {type: File, outputBinding: {glob: report.txt}}
