"""`apply --plain-first`: the plain one-step upgrade tried before the staged plan, which
takes over only when the disk fills."""

import logging

from adapters.apply.builder import ApplyError
from adapters.apply.measure import PeakSampler
from adapters.apply.operations import Operations
from adapters.apply.planning import Planned
from adapters.apply.results import ApplyResult, ApplyStatus, PlainOutcome, StepRecord
from adapters.nixstore import builds, profiles
from solver.errors import NixError
from solver.instance import build_instance
from solver.plan import one_step

log = logging.getLogger(__name__)


def plain_upgrade(ops: Operations, planned: Planned) -> ApplyResult | None:
    """The target built or fetched whole, then switched to. None when the disk filled
    (what the attempt left is collected first); any other failure stops the run."""
    ops.progress("collecting garbage")
    ops.roots.drop_drvs()
    ops.cleanup()
    target = planned.target
    root = ops.roots.build("plain")
    ops.progress("trying the plain upgrade first")
    with PeakSampler(ops.host, ops.host.store_dir()) as sampler:
        try:
            path = ops.built_there(target.path, target.drv, root) or builds.realise_path(
                ops.host, target.path, ops.flags, root=root, substituters=ops.builder.substituters
            )
        except NixError as e:
            if "No space left on device" not in str(e):
                raise ApplyError(f"the plain upgrade failed: {e}") from e
            ops.progress("the plain upgrade ran out of space: going step by step")
            log.info("plain upgrade out of space: %s", e)
            ops.cleanup()
            return None
        before = ops.current_generation()
        ops.builder.activate(path)
        after = ops.current_generation()
        if before is not None and after != before and not ops.keep_rollback:
            profiles.delete_generations(ops.host, ops.profile, [before])
        ops.roots.drop_keeps()
        ops.cleanup()
    final = ops.current()
    if final != target.path:
        raise ApplyError(f"the profile ended at {final}, not at the target {target.path}")
    single = one_step(build_instance(planned.problem))
    doc = planned.result.to_json() | {
        "steps": [single.steps[0].to_json()],
        "peak_bytes": single.peak_bytes,
    }
    calibration = planned.calibration
    record = StepRecord(
        1, path, single.peak_bytes, calibration.to_real(single.peak_bytes), sampler.peak
    )
    return ApplyResult(ApplyStatus.DONE, doc, calibration, [record], plain=PlainOutcome.DONE)
