"""Commands that describe without running: validate, benchmarks, models, scores, tasks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.cli.common import EXIT_BAD_INPUT, refuse

if TYPE_CHECKING:
    from engine.spec import BenchmarkSpec

NAME_WIDTH = 26  # column of the shipped benchmarks' names in `hardbench benchmarks`


def spec_from_args(
    args: argparse.Namespace, log: Callable[[str], None] = print
) -> tuple[BenchmarkSpec, str] | None:
    """The spec ``run``/``validate`` arguments name: a SPEC, or ``--data PATH [--recipe]``.

    Logs what ``--data`` found (source, columns, recipe) and the loader's notes on
    what includes gave. Returns None, having said why on stderr, for arguments that
    name no spec or both.

    Raises:
        SpecError: For an invalid spec, an unknown recipe or one that does not fit.
        BadInputError: For a ``--data`` PATH no source reads.
    """
    from engine.lifecycle.recipes import recipe_data
    from engine.spec import load_spec, load_spec_data

    if (args.spec is None) == (args.data is None):
        refuse("give a SPEC or --data PATH (not both)")
        return None
    notes: list[str] = []
    if args.data is None:
        if args.recipe is not None:
            refuse("--recipe goes with --data PATH (a SPEC names its base with include:)")
            return None
        spec = load_spec(args.spec, args.overrides, notes=notes)
        label = str(args.spec)
    else:
        label = f"--data {args.data}"
        data, found, recipe = recipe_data(args.data, args.recipe, args.overrides)
        log(f"data: {found.describe()}")
        log(f"recipe: {recipe} (shipped spec benchmarks/{recipe}.yaml)")
        spec = load_spec_data(data, args.overrides, source=label, notes=notes)
    for note in notes:
        log(f"note: {note}")
    return spec, label


def cmd_validate(args: argparse.Namespace) -> int:
    """``hardbench validate SPEC|--data PATH``: check a spec and describe it in one line."""
    from engine.data.errors import BadInputError

    try:
        found = spec_from_args(args)
    except BadInputError as exc:
        print(f"hardbench: bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if found is None:
        return EXIT_BAD_INPUT
    spec, label = found
    from engine.scores import get_score
    from engine.tasks.preflight import check_inputs

    for warning in check_inputs(spec, label):  # what the data's paths decide: refused here
        print(f"warning: {warning}")
    r = spec.replicas
    hard = spec.splits.describe(get_score(spec.splits.score).direction)
    models = [m.name for m in spec.evaluate.models]
    if spec.evaluate.ensemble:
        scorer = "single replica" if r.count == 1 else "ensemble"
        models.append(f"{scorer} (scorer, in-sample)")
    print(
        f"{label}: valid {spec.task.name} spec {spec.metadata.name!r}: {r.count} replica{'s' if r.count != 1 else ''} "
        f"({r.recipe.describe()}), {r.recipe.epochs} epochs on {spec.data.source}, "
        f"scores {', '.join(spec.scores)}, hard = {hard}, "
        f"{spec.splits.bins.count} bins, evaluating {', '.join(models) or 'nothing'}"
    )
    return 0


def cmd_benchmarks(args: argparse.Namespace) -> int:
    """``hardbench benchmarks``: the shipped specs, with their task, source and description."""
    from engine.spec import SpecError, list_benchmarks, load_spec

    for name in list_benchmarks():
        try:
            spec = load_spec(name)
        except SpecError as exc:
            print(f"{name:<{NAME_WIDTH}}invalid: {exc}")
            continue
        task, source = spec.task.name, spec.data.source
        print(f"{name:<{NAME_WIDTH}}{task:<16}{source:<17}{spec.metadata.description}")
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
        print(f"{name:<19}{info.direction:<16} {labels:<12}{info.description}")
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
