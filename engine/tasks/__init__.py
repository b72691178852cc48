"""Tasks: classification, extractive QA and seq2seq as small registered plugins.

``engine.tasks.registry`` holds what a spec needs (recipe, sources, defaults, checks);
each plugin (``engine.tasks.classification``, ``qa``, ``seq2seq``) holds the hooks the
one run lifecycle calls. No code outside a plugin asks which task it runs.

The registry imports none of its tasks: this package imports
``engine.tasks.definitions``, which registers the built-in ones (the timm way).
"""

from engine.tasks.loading import load_data
from engine.tasks.registry import TaskInfo, get_task, list_tasks, register_task

# isort: split
# After the registry: definitions import the spec, whose modules may import engine.tasks.
from engine.tasks import definitions  # noqa: F401  (registers the built-in tasks)

__all__ = ["TaskInfo", "get_task", "list_tasks", "load_data", "register_task"]
