"""parliament, the IAM checker users' security teams run, over every policy linker prints or attaches: the
gateway's role policy and the permissions boundary have no finding, and the controller's has only those
linker/control/iam_policy.py explains. Skipped, saying why, where parliament is not installed (scripts/setup puts
it in .tools/)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from linker.control.iam_policy import PARLIAMENT_FINDINGS, boundary_policy, controller_policy
from linker.control.render import GatewayInputs, assume_role_policy, role_policy

REPO = Path(__file__).resolve().parents[2]
TOOLS_PYTHON = REPO / ".tools" / "bin" / "python"
AUDIT = """
import json, sys
from parliament import analyze_policy_string
out = []
for doc in json.load(sys.stdin):
    policy = analyze_policy_string(doc, include_community_auditors=True)
    out.append(sorted({f.issue for f in policy.findings}))
print(json.dumps(out))
"""


def findings(*documents: str) -> list[list[str]]:
    if not TOOLS_PYTHON.exists():
        pytest.skip("parliament is not installed: run bash scripts/setup (it installs it into .tools/)")
    done = subprocess.run([str(TOOLS_PYTHON), "-c", AUDIT], input=json.dumps(list(documents)), capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


GATEWAY = GatewayInputs(link="prod", site="eu-west-1", region="eu-west-1", port=51820, mtu=1420,
                        package_bucket="linker-prod-eu-west-1-123456789012", package_key="wheels/0123/x.tar",
                        package_sha256="0" * 64, version="0.1.0")


def test_the_gateway_role_policy_and_the_boundary_have_no_finding() -> None:
    assert findings(role_policy(GATEWAY), json.dumps(boundary_policy())) == [[], []]


def test_the_controller_policy_has_only_the_explained_findings() -> None:
    [found] = findings(json.dumps(controller_policy()))
    unexplained = set(found) - set(PARLIAMENT_FINDINGS)
    assert not unexplained, f"explain or fix in linker/control/iam_policy.py: {unexplained}"
    readme = (REPO / "README.md").read_text()
    assert all(issue in readme for issue in found), "the README's IAM section must name each remaining finding"


def test_the_trust_policy_is_parliament_clean_and_the_check_can_fail() -> None:
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    trust = json.loads(assume_role_policy())
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    [wide_found] = findings(json.dumps(wide))
    assert "RESOURCE_STAR" in wide_found or "PERMISSIONS_MANAGEMENT_ACTIONS" in wide_found
