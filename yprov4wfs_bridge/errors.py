"""The bridge's errors: each names the problem and the fix."""


class WorkflowError(ValueError):
    """A misuse of the workflow API, or a workflow directory that cannot be built; the message names the fix."""
