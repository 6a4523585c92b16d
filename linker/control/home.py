"""The link's home region: the one region whose lock every run of the link takes, whatever regions it names. Pure.

The home is chosen when the link is first made (the first region of its first ``up``) and never moves. It is
recorded as the SSM parameter ``/linker/<link>/home`` (value: the region's name) in every region of the link, so
that a run naming any of them finds it before it locks. A parameter and not a tag: every run reads the link's
parameters already, the lock is one, SSM tags need actions the controller does not otherwise hold, and the EC2
resources that could carry a tag do not exist before the first apply. The record is written by ``up`` in its
seed phase (before anything else is made in a region) and removed by ``down`` last, after everything else; when
``up`` removes the home region from the link its record (and the lock) stay there: a parameter costs nothing, and
the home stays where every other record points. Immutable values; thread-safe.

Which locks a run takes (``lock_regions``): every home recorded in the regions it names, plus each named region
that has no record. A run over the regions of an existing link takes one lock, its home's; a run that adds a
region also takes that region's lock; the first runs of a new link take a lock in each of their regions, so two
first ``up``s that share a region contend there, and the loser, once it sees the winner's records, takes the
winner's home. A run re-reads the records once it holds its locks and starts again when they changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from linker import naming
from linker.control.changes import Action, Change, Kind, Phase
from linker.control.facts.model import LinkFacts

Records = Mapping[str, "str | None"]  # {region: the home recorded there, None: no record}


def choose_home(records: Records, named: Sequence[str]) -> str:
    """The link's home: the one recorded; when regions disagree (two links of one name joined by an ``up``), the
    first in sorted order; when none is recorded (a new link, or one made before homes existed), the first region
    named. Raises ValueError when ``named`` is empty and nothing is recorded."""
    homes = sorted({h for h in records.values() if h})
    if homes:
        return homes[0]
    if not named:
        raise ValueError("no region to choose a home from")
    return named[0]


def lock_regions(records: Records, named: Sequence[str]) -> tuple[str, ...]:
    """The regions whose lock a run over ``named`` holds, in the order they are taken (sorted, so that two runs
    never wait on each other in opposite orders): every recorded home and every named region without a record."""
    homes = {h for h in records.values() if h}
    return tuple(sorted(homes | {r for r in named if not records.get(r)}))


def recorded(facts: LinkFacts) -> dict[str, str | None]:
    """{region: the home recorded there} for every region of ``facts``."""
    name = naming.home_parameter(facts.link)
    return {rf.region: rf.parameter(name) for rf in facts.regions}


def plan_home(facts: LinkFacts, sites: Sequence[str], removed: Sequence[str]) -> list[Change]:
    """Record the home in each site that lacks it (seed phase); forget it in the sites ``up`` removes, after
    their teardown, except in the home itself."""
    records = recorded(facts)
    home = choose_home(records, sites)
    name = naming.home_parameter(facts.link)
    out = [Change(s, s, Phase.SEED, Action.UPDATE, Kind.PARAMETER, name, (("value", home),),
                  "the link's home region, where its lock lives")
           for s in sites if records.get(s) != home]
    out += [Change(r, r, Phase.CLEANUP, Action.DELETE, Kind.PARAMETER, name, (), "site removed")
            for r in removed if records.get(r) and r != home]
    return out


def forget_home(facts: LinkFacts) -> list[Change]:
    """``down``: remove every home record, in the last phase, after everything else of the link."""
    name = naming.home_parameter(facts.link)
    return [Change(r, r, Phase.PRUNE, Action.DELETE, Kind.PARAMETER, name, (), "the link is removed")
            for r, home in sorted(recorded(facts).items()) if home]

