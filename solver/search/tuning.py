"""Every tuning constant of the search, in one place: time shares, widths, patience, sizes.

Shares are fractions of the user's time limit (--time-limit, a cap, not a target);
seconds are wall-clock seconds (CP-SAT work units under a deterministic deadline).
"""

# -- the peak ------------------------------------------------------------------------------

# With the fewest steps found, the peak is lowered until it is within this fraction of
# its proven bound (0.01 %, the usual MIP gap: 2.5 MB on a 25 GB store). Proving the
# last few megabytes can take the whole time limit and buys nothing a disk notices.
PEAK_GAP = 1e-4
# Once the fewest steps are known, lowering the peak (and then shortening absences) gets
# at most this share of the time limit, and stops sooner when CP-SAT has not lowered it by
# more than the peak gap for PEAK_PATIENCE seconds: the last megabytes are rarely worth
# the user's wait.
PEAK_SHARE = 0.05
PEAK_PATIENCE = 2.0
# ... but never less than this, so that small plans get their lowest peak on a busy machine.
PEAK_SECONDS = 4.0
# ... and never more than this fraction of what is left of the time limit.
PEAK_OF_LEFT = 0.8

# -- fewer steps ---------------------------------------------------------------------------

# Searching for fewer steps (or for any plan, when the heuristics have none under the
# budget) gets at most this share of the time limit: when CP-SAT neither finds nor
# refutes a plan by then, it rarely does before the limit, and the user is waiting.
STEPS_SHARE = 0.3
# Of that share, re-planning windows of a few steps with their ends fixed
# (solver/search/windows.py) gets at most this much, before the whole model is asked.
WINDOW_SHARE = 0.2
# ... and squeezing the plan into one step fewer (solver/search/squeeze.py) at most this
# much, or this much when the plan is two or more steps above the bound (see `squeeze`).
# One step above, the plan in hand is often optimal and the time is the user's wait: a
# share of 0.15 added 1.5 to 3 s to such 3,000- to 25,000-path instances and found no
# plan that 0.1 did not.
SQUEEZE_SHARE = 0.1
SQUEEZE_FAR_SHARE = 0.4
# ... and a probe of the lower bound on steps from below (`probes`) this much each.
PROBE_SECONDS = 1.0

# Windows (solver/search/windows.py): the widest tried, in steps; wider ones approach the
# whole model, which the pipeline asks next anyway. CP-SAT time for one window: most are
# decided in well under a second.
WINDOW_MAX_WIDTH = 4
WINDOW_SECONDS = 10.0

# The squeeze (solver/search/squeeze.py): the merged plans its moves try first; the
# stretches it rebalances with CP-SAT, 3 steps wide first, wider once every narrower one
# is settled; CP-SAT time for one stretch (most are solved to optimality in well under a
# second), and how long a stretch whose overflow has not dropped is worked on; how many
# components its moves price in one numpy pass.
DESCENTS = 3
STRETCH_MIN_WIDTH = 3
STRETCH_MAX_WIDTH = 5
STRETCH_SECONDS = 3.0
STRETCH_PATIENCE = 1.0
PRICED_TOGETHER = 16
# Its kicks (an iterated local search, `_Moves.wander`): the moves settle again after
# each, 0.01 to 0.3 s on 3,000 to 25,000 paths; the kicks stop after this many in a row
# that did not lower the overflow, and a kick that is not a library's users moves this
# many components.
KICK_PATIENCE = 30
KICKED_COMPONENTS = 3
# Its swaps (`_Moves._swap`): how many of the best estimated swaps between two steps are
# made for real to see whether they lower the score.
SWAPS_CHECKED = 5

# -- deterministic work (solver/deadline.py) ---------------------------------------------

# What the local searches charge a deterministic deadline, in seconds of one core (times
# WORK_PER_SECOND in work units), measured on 1,000- to 10,000-path systems: pricing an
# order of moves (solver/search/orders.py) costs this per call plus this per (group, user)
# pair and component; pricing a batch of the squeeze's moves and scoring them, this per
# call, this per row of the batch (a group of one of its components) to find the rows a
# move can change, and this per such row and step (fitted on 1,000- to 25,000-path
# rebuilds); building a model, this per unit of `model_work`.
ORDER_CALL_SECONDS = 6e-5
ORDER_PAIR_SECONDS = 5.5e-9
PRICE_CALL_SECONDS = 2e-4
PRICE_FILTER_SECONDS = 3e-8
PRICE_ROW_SECONDS = 2.5e-8
BUILD_WORK_SECONDS = 1.7e-6

# -- orders and the smallest budget --------------------------------------------------------

# The local search over one-change-per-step orders (solver/search/orders.py) settles
# within a second on 500 components; its gains after that are rare.
ORDER_SECONDS = 1.0
# Without a plan under a budget below the proven floor, the smallest budget that works
# is searched for this share of the time limit.
MIN_BUDGET_SHARE = 0.15
# ... until the smallest budget is bracketed this closely (0.25 %: 20 MB of an 8 GB disk;
# "unknown" bands are to stay under 0.5 %).
BRACKET_GAP = 2.5e-3
# The exact smallest-budget search evaluates every group at every generation and every
# single change: this many group evaluations take about half a second.
EXACT_WORK = 40_000_000

# -- model size (solver/model/size.py's `model_work`: (group, user) pairs times slots) -------

# No probe, and no model for the peak, is built past this: building it alone takes seconds
# (25,000 paths all rebuilt: 250,000 pairs, 3 s for 7 slots), and on such models neither
# has been decided in its time.
LARGE_MODEL = 500_000
# A model with a slot for every change a plan can need (solver/search/minbudget.py) gets
# the 9 to 18 s of a smallest-budget or any-plan search, not a probe's second: it is built
# up to this; past it the bracket stays as the heuristics leave it.
LARGE_SLOT_MODEL = 3_000_000
