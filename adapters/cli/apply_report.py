"""What `apply` says: what a run deletes (before it deletes it), how it ended, and with
--json, one document for a failure too (`FailureDocument`)."""

import json
from pathlib import Path
from typing import cast

import click

from adapters.apply.builder import ApplyError
from adapters.apply.results import (
    ApplyResult,
    ApplyStatus,
    Deletions,
    FailureDocument,
    NoPlanDocument,
)
from adapters.cli.escape import one_line
from adapters.cli.failures import exit_code, message
from adapters.nixstore.host import Host
from solver.units import format_size


def failure_document(error: BaseException) -> FailureDocument | NoPlanDocument:
    """What `apply --json` prints when `error` stops the run: its line, its exit status
    and the step that failed; when no plan fits, the plan's document with the same keys."""
    # Imported when run: apply's --help, which imports this module, loads no solver.
    from adapters.apply.planning import InfeasibleError

    said, code = message(error), int(exit_code(error))
    if isinstance(error, InfeasibleError):
        fields = {"error": said, "exit_code": code, "failed_step": None}
        doc = cast(NoPlanDocument, {**error.result.to_json(), **fields})
        if error.calibration is not None and error.limit is not None:
            # The same budgets in --limit's terms: the filesystem's used bytes.
            shown = error.calibration.in_limit_terms(error.result, error.limit)
            doc["limit_bytes"] = error.limit
            doc["min_feasible_limit_bytes"] = shown.min_feasible_budget
            doc["min_limit_lower_bound_bytes"] = shown.min_budget_lower_bound
            doc["calibration"] = error.calibration.to_json()
        return doc
    return {
        "status": ApplyStatus.FAILED.value,
        "error": said,
        "exit_code": code,
        "failed_step": error.step if isinstance(error, ApplyError) else None,
    }


def print_failure(error: BaseException) -> None:
    click.echo(json.dumps(failure_document(error), indent=2))


def deletion_lines(d: Deletions) -> list[str]:
    """What a run deletes, for a person: the rollback it loses, first."""
    if d.resuming:
        return [
            one_line(
                f"resuming the interrupted run on {d.profile}: it deletes the "
                "generations it created as the next one replaces each"
            )
        ]
    lines = []
    if d.start_generation is not None:
        if d.rollback_bytes is not None and d.steps == 1:
            lines.append(
                f"keeps generation {d.start_generation} of {d.profile} "
                f"({d.start_path}) as the rollback: {format_size(d.rollback_bytes)} more on "
                "disk after the run"
            )
        else:
            lines.append(
                f"deletes generation {d.start_generation} of {d.profile} "
                f"({d.start_path}) once step 1 is current: the rollback to the running "
                "system goes with it"
            )
    if d.steps > 1:
        kept = " but the last" if d.rollback_bytes is not None else ""
        lines.append(
            f"deletes the {d.steps - 1} intermediate generation(s) it creates{kept}, each "
            "once the next is current"
        )
        if d.rollback_bytes is not None:
            lines.append(
                f"keeps generation {d.steps - 1} of the plan as the rollback: "
                f"{format_size(d.rollback_bytes)} more on disk after the run"
            )
    lines.append(
        f"collects {format_size(d.garbage_bytes)} of garbage first (paths no GC root keeps)"
    )
    if d.rollback_bytes is None:
        lines.append(
            "--keep-rollback keeps the generation before the target as a rollback: no more "
            "disk at any step, some more after the run"
        )
    # The profile is the user's value: a newline in it starts no line of its own.
    return [one_line(line) for line in ("this run " + lines[0], *(f"  and {x}" for x in lines[1:]))]


def print_applied(host: Host, result: ApplyResult, profile: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    profile_name = one_line(host.named(profile))
    done = [s for s in result.steps if s.measured_peak_bytes is not None]
    for step in done:
        click.echo(
            f"step {step.index}/{len(result.steps)}: {step.path}  peak "
            f"{format_size(step.measured_peak_bytes or 0)} "
            f"(predicted {format_size(step.predicted_peak_bytes)})"
        )
    if result.status is ApplyStatus.PLANNED:
        if result.resume_after is not None:
            click.echo(
                f"dry run: an interrupted run would resume after step {result.resume_after} "
                f"of {len(result.steps)}; nothing was changed"
            )
        elif not result.plan.get("steps"):
            click.echo("dry run: nothing to do; nothing was changed")
        else:
            gens = ", ".join(map(str, result.would_delete or [])) or "none"
            click.echo(
                f"dry run: a run would first collect {format_size(result.garbage_bytes or 0)} "
                f"of garbage, and replace generation {gens} of {profile_name} (deleting it once "
                "the first step is current); nothing was built, switched or deleted"
            )
        return
    if result.status is ApplyStatus.REBOOT:
        last = done[-1] if done else None
        where = last.path if last else host.realpath(profile)
        click.echo(
            f"reboot into {where} (the next boot's default), then run the same command again "
            "to continue"
        )
    else:
        click.echo(f"done: {profile_name} points at {host.realpath(profile)}")
