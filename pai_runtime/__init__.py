"""The task runtime: PAI_* environment, ports, secrets rendering, and supervision of task attempts.

Entry points: ``python -m pai_runtime TASK_DIR`` (one task, foreground) and
``python -m pai_runtime.launcher`` (the local backend's launcher).
"""
