"""The applier's handler table: every kind of change has its handlers, each named after its (action, kind)."""

import pytest

from linker.control.apply import HANDLERS
from linker.control.changes import Action, Change, Kind, Phase


def test_every_kind_has_a_handler_named_after_its_key() -> None:
    for (action, kind), handler in HANDLERS.items():
        assert handler.__name__ == f"{action}_{kind}".replace("-", "_")  # so grep finds it from the plan's output
    assert {kind for _, kind in HANDLERS} == set(Kind)
    assert {action for action, _ in HANDLERS} == set(Action)


def test_changes_take_plain_strings_and_refuse_unknown_ones() -> None:
    change = Change("us-east-1", "us-east-1", Phase.SEED, "update", "membership", "/linker/x/membership")
    assert (change.action, change.kind) == (Action.UPDATE, Kind.MEMBERSHIP) and (change.action, change.kind) in HANDLERS
    assert change.to_dict()["kind"] == "membership" and change.describe().startswith("update membership")
    with pytest.raises(ValueError):
        Change("us-east-1", "us-east-1", Phase.SEED, "update", "nonsense", "x")
