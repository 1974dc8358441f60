"""Samplers: the one round-based interface every policy runs on.

A policy asks a sampler for more generations of some prompts (`request`),
sees what came back (`draws`), and asks again, round after round. The same
policy code therefore runs on a bank replay (BankSampler: the bank's samples
in the seeded draw order of collm.bank.draws, vectorised and free) and on a
live model (LiveSampler: batched Backend.generate calls, one per round and
sample count).

The sampler is also the meter: it charges every request its worst case
before serving it (collm.budget) and refuses what does not fit, so no policy
can overspend, and it records each prompt's FLOPs, generations and the
estimators' share.

    collm.samplers.base   Draw, the meter (Sampler), a prompt's votes (tally, leader)
    collm.samplers.bank   BankSampler
    collm.samplers.live   LiveSampler
"""

from collm.samplers.bank import BankSampler
from collm.samplers.base import Draw, Meter, Sampler, as_number, leader, plausible, tally
from collm.samplers.live import LiveSampler

__all__ = ["BankSampler", "Draw", "LiveSampler", "Meter", "Sampler", "as_number", "leader", "plausible", "tally"]
