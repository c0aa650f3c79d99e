cwlVersion: v1.2
class: CommandLineTool
label: make data
inputs:
  python: string
  script: File
arguments: [$(inputs.python), $(inputs.script.path), make-data, raw.pt]
outputs:
  raw: {type: File, outputBinding: {glob: raw.pt}}
