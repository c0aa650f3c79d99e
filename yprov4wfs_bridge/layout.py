"""The files of a workflow directory (what the bridge and the manager adapters write there)."""

MANIFEST = "workflow.json"  # the workflow: tasks, data, agents (replayed from EVENTS when there is one)
WORKFLOW_PROV = "workflow.prov.json"
EVENTS = "events.jsonl"  # a manager's events, one line each, as they happened
