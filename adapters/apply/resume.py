"""When an interrupted run resumes: the journal is checked against the profile and the
command line, never believed. It resumes only the plan for this profile, target and
budget, while the profile stands on that plan and the plan ends at the target the
command line names (found again, not read from the journal)."""

import os

from adapters.apply.journal import Journal
from adapters.apply.operations import Operations
from adapters.nixstore import nix, profiles
from adapters.nixstore.host import LOCAL
from solver.errors import InputError


def resumable(ops: Operations, journal: Journal, current: str, limit: int) -> str | None:
    """The target's top-level path when `journal` is this profile's, for this target and
    budget, and the profile is on its plan; None when it is someone else's plan. A
    journal that names what is not a store path, or whose last generation is not the
    command line's target, is refused as a damaged one is (`InputError`, exit 2: remove
    it)."""
    if journal.profile != str(ops.profile) or current not in journal.paths:
        return None
    if journal.target != ops.builder.identity() or journal.budget != limit:
        return None
    for path in journal.paths:
        if path is not None and not nix.is_store_path(ops.host, path):
            raise InputError(
                f"{journal.path}: names {path!r}, not a store path of "
                f"{ops.host.store_dir()}; remove it to plan afresh"
            )
    target = target_path(ops, current)
    if journal.paths[-1] != target:
        raise InputError(
            f"{journal.path}: its last generation {journal.paths[-1]} is not the target "
            f"{target}; remove it to plan afresh"
        )
    return target


def target_path(ops: Operations, current: str) -> str:
    """The top-level path of the target the command line names, found again (not taken
    from the journal): cheaply for a store path or a derivation here, else as planning
    reads it."""
    identity = ops.builder.identity()
    # The target is named here, where it was evaluated, whatever host the run changes.
    if identity.startswith("/") and not identity.endswith(".drv"):
        resolved = nix.resolve_store_path(LOCAL, identity)
        if resolved is not None and nix.is_store_path(LOCAL, os.path.realpath(identity)):
            return resolved
    if nix.is_store_path(LOCAL, identity) and identity.endswith(".drv"):
        if not nix.invalid_paths(LOCAL, [identity]):
            return nix.query_outputs(LOCAL, identity)[0]
    old = nix.live_closure(ops.host, current, source=ops.host.named(current))
    return ops.builder.target(old).path


def awaiting_reboot(ops: Operations, current: str) -> bool:
    """The run stopped for a reboot into `current`, and the machine runs another."""
    booted = ops.builder.booted()
    return ops.builder.reboots and booted is not None and booted != current


def forget_replaced(ops: Operations, journal: Journal) -> None:
    """Delete generations of this run that a crash kept from being deleted (with
    `keep_rollback`, the newest one before a current target stays)."""
    current = ops.current_generation()
    owned = ops.owned(journal)
    numbers = profiles.generations(ops.host, ops.profile)
    stale = [n for n in numbers if n != current and n in owned]
    if ops.keep_rollback and ops.current() == journal.paths[-1] and stale:
        stale.remove(max(stale))
    profiles.delete_generations(ops.host, ops.profile, stale)
