"""Tasks: classification, extractive QA and seq2seq as small registered plugins.

``engine.tasks.registry`` holds what a spec needs (recipe, sources, defaults, checks);
each plugin (``engine.tasks.classification``, ``qa``, ``seq2seq``) holds the hooks the
one run lifecycle calls. No code outside a plugin asks which task it runs.
"""

from engine.tasks.registry import TaskInfo, get_task, list_tasks, register_task

__all__ = ["TaskInfo", "get_task", "list_tasks", "register_task"]
