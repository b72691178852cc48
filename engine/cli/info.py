"""Commands that describe without running: validate, models, scores, tasks."""

from __future__ import annotations

import argparse


def cmd_validate(args: argparse.Namespace) -> int:
    """``hardbench validate SPEC``: check a spec and describe it in one line."""
    from engine.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    r = spec.replicas
    models = [m.name for m in spec.evaluate.models]
    if spec.evaluate.ensemble:
        models.append("ensemble (scorer, in-sample)")
    print(
        f"{args.spec}: valid {spec.task.name} spec {spec.metadata.name!r}: {r.count} replicas "
        f"({r.recipe.describe()}), {r.recipe.epochs} epochs on {spec.data.source}, "
        f"scores {', '.join(spec.scores)}, hard = {spec.splits.describe()}, "
        f"{spec.splits.bins.count} bins, evaluating {', '.join(models) or 'nothing'}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """``hardbench models [PATTERN]``: the registered models."""
    from engine.models import get_model_config, list_models

    for name in list_models(args.pattern):
        cfg = get_model_config(name)
        print(f"{name:<18}{cfg.family:<8}{cfg.description}")
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    """``hardbench scores``: the registered scores, their direction, inputs and options."""
    from engine.scores import get_score, list_scores

    for name in list_scores():
        info = get_score(name)
        labels = "labels" if info.needs_labels else "label-free"
        print(f"{name:<19}{info.direction:<17}{labels:<12}{info.description}")
        for key, opt in info.options.items():
            values = " | ".join(opt.choices) if opt.choices else opt.kind.__name__
            print(f"{'':<19}option {key}: {values} (default {opt.default}): {opt.description}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """``hardbench tasks``: the registered tasks and the data sources each reads."""
    from engine.tasks import get_task, list_tasks

    for name in list_tasks():
        task = get_task(name)
        print(f"{name:<16}{task.description} (sources: {', '.join(task.sources())})")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    """``hardbench sources``: the registered data sources."""
    from engine.data.registry import get_source, list_registered_sources

    for name in list_registered_sources(args.pattern):
        info = get_source(name)
        print(
            f"{name:<16}{'needs data.path' if info.needs_path else 'bundled':<17}{info.description}"
        )
    return 0
