"""A run whose every channel carries a planted secret (each marked with "planted" in capitals), inside a workflow task.

    MYSQL_PWD=PLANTED-ENV-1 ... python secret_training.py OUT_DIR --db-password PLANTED-ARGV-1 --token=PLANTED-ARGV-2
"""

import sys
from pathlib import Path

import yprov4ml
from yprov4wfs_bridge import Workflow

out = Path(sys.argv[1])
with Workflow("secrets", directory=out / "wf") as wf:
    with wf.task("train"):
        with yprov4ml.start_run("www.example.org", "secrets", out / "prov") as run:
            yprov4ml.log_params({
                "db_url": "postgresql://admin:PLANTED-PARAM-1@db.example.org/prod",
                "api_key": "PLANTED-PARAM-2",
                "config": {"wandb": {"api_key": "PLANTED-PARAM-3"}, "layers": [{"token": "PLANTED-PARAM-4"}]},
                "proxy": "http://bob:p@ss-PLANTED-PARAM-5@proxy.example.org:3128",
                "storage": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=PLANTED-PARAM-6==;Suffix=x",
                "header": "Bearer PLANTED-PARAM-7-abcdefgh",
                "lr": 0.01, "tokenizer": "bert-base-uncased",
            })
            yprov4ml.log_metric("loss", 0.5)
            note = out / "notes.txt"
            note.write_text("harmless")
            yprov4ml.log_artifact(note, name="https://u:PLANTED-NAME-1@host.example.org/notes.txt")
