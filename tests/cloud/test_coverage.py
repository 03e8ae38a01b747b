"""Every live check (MW800-MW849) has a failing and a passing case against a real local
server: a row of a CASES table, or a test of its own where the case needs its own account
state (listed here with the test that holds it)."""

from __future__ import annotations

from mlward.rules import RULES

from . import test_aws, test_azure, test_gcp

OWN_TESTS = {
    "MW802": test_aws.test_account_block_public_access,      # one account: off, then on
    "MW844": test_azure.test_soft_delete_on_an_account_holding_models,  # off, then on
}


def test_every_live_check_has_a_failing_and_a_passing_case() -> None:
    live = {r for r in RULES if "MW800" <= r <= "MW849"}
    assert len(live) >= 30
    tabled = {rule for module in (test_aws, test_gcp, test_azure) for rule, _, _ in module.CASES}
    assert live - tabled - set(OWN_TESTS) == set()
